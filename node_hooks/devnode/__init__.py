"""The devnet Halo-style node: a small but real chain that hosts the exchange plugin through the node hooks.

LevelDB chain state in the layout of ``halo_exchange.chain.layout``, real secp256k1-signed transactions,
outputs carrying peg fractions by the consensus transfer rule, peg votes and the supply schedule, a
validating mempool, reorgs through block invalidation, and a control XML-RPC for tests and operators.
"""
