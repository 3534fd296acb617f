"""Packaging for halo-exchange: the exchange mode of a Halo-style node for BitBay's dynamic peg."""

from setuptools import find_packages, setup

setup(
    name="halo-exchange",
    version="0.1.0",
    description="Exchange mode for a Halo-style BitBay node: peg-aware customer ledger and XML-RPC API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["halo_exchange", "halo_exchange.*", "node_hooks", "node_hooks.*"]),
    install_requires=[
        # The reactor that serves XML-RPC beside the node (DESIGN.md §3).
        "twisted>=24.7,<27",
        # LevelDB, shared with the node (DESIGN.md §4).
        "plyvel>=1.5,<2",
        # secp256k1 signatures for transactions and the exec hook.
        "ecdsa>=0.19,<0.20",
        # AES-GCM for the exchange wallet at rest (the stdlib has scrypt but no cipher).
        "cryptography>=42",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",
            "hypothesis>=6.100,<7",
            # The linter `make lint` runs (and `make test` first); rules in pyproject.toml.
            "ruff>=0.6,<1",
        ],
    },
    entry_points={"console_scripts": ["halo-exchange=halo_exchange.cli:main"]},
)
