"""Differential conformance harness: ``halo_exchange.peg`` against bitbay-core's compiled peg code.

Not part of ``make test`` (no file here is named ``test_*``): it needs an oracle executable built from
bitbay-core outside this repository. Run it with ``make conformance PEG_ORACLE=...`` or
``PEG_ORACLE=... python -m tests.conformance``; docs/conformance.md describes the protocol.
"""
