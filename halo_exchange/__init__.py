"""halo-exchange: the exchange mode of a Halo-style node for BitBay's dynamic peg.

The package is layered (see README.md, "Layout"): ``peg`` is pure peg arithmetic, ``chain`` reads and
writes the node's chain, ``ledger`` holds customer accounting, ``rpc`` translates the XML-RPC API.
"""

__version__ = "0.1.0"
