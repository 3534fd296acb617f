"""The node side of the plugin boundary: the hooks a Halo-style node calls to host exchange mode.

Depends on ``halo_exchange``, never the reverse. The hook protocol, its dispatcher and the devnet node land
with issue 3 (DESIGN.md §2-§3).
"""
