"""The node's chain as node and plugin see it."""
