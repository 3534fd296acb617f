"""The exchange wallet: keys durable as records, encrypted at rest on request, locked and unlocked."""

from __future__ import annotations

import pytest

from halo_exchange.chain.keys import DEVNET
from halo_exchange.ledger.store import WALLET_KEY, ExchangeStore, WalletCodec
from halo_exchange.ledger.wallet import (
    WRONG_PASSPHRASE,
    ExchangeWallet,
    KdfParams,
    WalletError,
    WalletState,
)

FAST = KdfParams(n=2**10, r=8, p=1)  # the real cost is for attackers, not for tests


def _reload(store: ExchangeStore) -> ExchangeWallet:
    records, meta = WalletCodec.load(store)
    return ExchangeWallet(records, meta, DEVNET, FAST)


def _write_key(store: ExchangeStore, address: str, record: bytes) -> None:
    store.write(WalletCodec.key_ops({address: record}))


def _write_sealing(store: ExchangeStore, wallet: ExchangeWallet, passphrase: str) -> None:
    sealing = wallet.encrypt(passphrase)
    store.write([WalletCodec.meta_op(sealing.meta)] + WalletCodec.key_ops(sealing.records))


def test_plain_wallet_keys_survive_a_reload(tmp_path) -> None:
    """A new key's record, once written, reloads to the same key; its address is a BitBay address."""
    store = ExchangeStore(str(tmp_path / "x"))
    wallet = _reload(store)
    assert wallet.state is WalletState.PLAIN
    key, address, record = wallet.new_key()
    _write_key(store, address, record)
    again = _reload(store)
    assert again.addresses == {address} and address.startswith("B")
    assert again.private_key(address).to_bytes() == key.to_bytes()
    store.close()


def test_encrypted_wallet_locks_and_unlocks(tmp_path) -> None:
    """After encryption no secret is stored in clear; a reload is locked until the right passphrase."""
    store = ExchangeStore(str(tmp_path / "x"))
    wallet = _reload(store)
    key, address, record = wallet.new_key()
    _write_key(store, address, record)
    _write_sealing(store, wallet, "correct horse")
    assert wallet.state is WalletState.UNLOCKED
    raw = b"".join(value for _, value in store.iterator(WALLET_KEY))
    assert key.to_bytes() not in raw

    locked = _reload(store)
    assert locked.state is WalletState.LOCKED
    with pytest.raises(WalletError, match="locked"):
        locked.private_key(address)
    with pytest.raises(WalletError, match="locked"):
        locked.new_key()
    with pytest.raises(WalletError) as wrong:
        locked.unlock("battery staple")
    assert str(wrong.value) == WRONG_PASSPHRASE and locked.state is WalletState.LOCKED
    locked.unlock("correct horse")
    assert locked.private_key(address).to_bytes() == key.to_bytes()
    _, second, record = locked.new_key()
    _write_key(store, second, record)
    assert key.to_bytes() not in b"".join(value for _, value in store.iterator(WALLET_KEY))
    relocked = _reload(store)
    relocked.unlock("correct horse")
    assert relocked.addresses == {address, second}
    store.close()


def test_a_sealed_record_cannot_be_moved_to_another_address(tmp_path) -> None:
    """Records are bound to their address: a swapped record fails to open instead of giving a wrong key."""
    store = ExchangeStore(str(tmp_path / "x"))
    wallet = _reload(store)
    _write_sealing(store, wallet, "pw-1234")
    _, first, record1 = wallet.new_key()
    _, second, record2 = wallet.new_key()
    store.write(WalletCodec.key_ops({first: record2, second: record1}))
    swapped = _reload(store)
    swapped.unlock("pw-1234")
    with pytest.raises(WalletError, match="damaged or not its own"):
        swapped.private_key(first)
    store.close()


def test_encrypt_needs_a_passphrase_and_happens_once(tmp_path) -> None:
    """An empty passphrase is refused; encrypting twice is refused."""
    store = ExchangeStore(str(tmp_path / "x"))
    wallet = _reload(store)
    with pytest.raises(WalletError):
        wallet.encrypt("")
    wallet.encrypt("pw")
    with pytest.raises(WalletError, match="already"):
        wallet.encrypt("pw")
    store.close()


def test_an_imported_key_signs_for_its_address_after_a_reload(tmp_path) -> None:
    """recover's import: a key made earlier goes into a plain wallet under its own address and reloads to the
    same key; an encrypted wallet refuses imports (sealing needs the passphrase; encrypt-wallet comes after)."""
    from halo_exchange.chain.keys import PrivateKey

    store = ExchangeStore(str(tmp_path / "x"))
    key = PrivateKey.generate()
    address, record = _reload(store).import_key(key)
    assert address == key.public_key().address(DEVNET)
    _write_key(store, address, record)
    assert _reload(store).private_key(address) == key
    store.close()
    sealed = ExchangeWallet({}, None, DEVNET, FAST)
    sealed.encrypt("pass phrase")
    with pytest.raises(WalletError, match="plain wallet only"):
        sealed.import_key(PrivateKey.generate())
