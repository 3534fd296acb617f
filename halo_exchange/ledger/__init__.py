"""Exchange accounting: balances in the pooled-share book, kept durable in the plugin's own LevelDB.

Knows nothing of XML-RPC. ``book.py`` is the hot path; ``halo_exchange.peg.ops`` is its oracle.
"""
