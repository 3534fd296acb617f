"""The devnet node's wallet: its keys (kept in the node DB, unencrypted: devnet only) and transaction signing.

It owns the premine and the stake rewards, funds ``sendtoaddress`` / ``sendfrozen`` and stakes blocks. Which
of its coins to spend is :mod:`node_hooks.devnode.coins`' decision, which sees the UTXO set and the mempool.
"""

from __future__ import annotations

import threading
from typing import Sequence

from halo_exchange.chain.keys import DEVNET, PrivateKey
from halo_exchange.chain.script import address_to_script
from halo_exchange.chain.tx import Transaction, sign_input
from node_hooks.devnode.store import ChainStore


class DevWallet:
    """Keys by address, persisted in the node DB as soon as they are created."""

    def __init__(self, store: ChainStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._keys: dict[str, PrivateKey] = {
            address: PrivateKey.from_bytes(secret) for address, secret in store.wallet_keys().items()
        }
        self._scripts = {address_to_script(address, DEVNET): address for address in self._keys}

    @staticmethod
    def new_key() -> tuple[str, PrivateKey]:
        key = PrivateKey.generate()
        return key.public_key().address(DEVNET), key

    def new_address(self) -> str:
        """A fresh address, durable in the node DB before it is returned."""
        address, key = self.new_key()
        with self._lock:
            self._store.put_wallet_key(address, key.to_bytes())
            self._keys[address] = key
            self._scripts[address_to_script(address, DEVNET)] = address
        return address

    @property
    def addresses(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def owns_script(self, script: bytes) -> bool:
        with self._lock:
            return script in self._scripts

    def sign(self, tx: Transaction, prev_scripts: Sequence[bytes]) -> Transaction:
        """Sign every input of ``tx``; ``prev_scripts[i]`` is the script of the output input ``i`` spends."""
        with self._lock:
            for index, script in enumerate(prev_scripts):
                key = self._keys[self._scripts[script]]
                tx = sign_input(tx, index, key, script)
        return tx
