"""The exchange wallet: the keys of the exchange's deposit addresses, durable, and encrypted at rest on request.

States (an explicit state machine):

``PLAIN``     no passphrase set: secrets are stored as they are (a fresh exchange, or a devnet)
``LOCKED``    secrets are encrypted and the passphrase is not in memory: new keys and signing are refused
``UNLOCKED``  encrypted at rest, the passphrase-derived key is in memory (``ExchangePassword`` unlocks)

Encryption: the passphrase goes through scrypt (stdlib ``hashlib.scrypt``) to a 256-bit key, and each secret is
sealed with AES-256-GCM (``cryptography``'s AEAD, nonce per record, the address as associated data, so a record
cannot be moved to another address). A sealed check value proves a passphrase right or wrong without touching
a key. Nothing is written here: every change returns the records it made (a key record by address, the
encryption metadata), ``store.WalletCodec`` turns them into writes, and the engine commits them in its batch,
so a key is durable before its address is handed out.
"""

from __future__ import annotations

import enum
import hmac
import os
import threading
from dataclasses import dataclass
from hashlib import scrypt

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from halo_exchange.chain.keys import DEVNET, Network, PrivateKey
from halo_exchange.errors import HaloExchangeError

# A key record: u8 kind ‖ (32-byte secret | 12-byte nonce ‖ AES-GCM ciphertext).
_PLAIN, _SEALED = 0, 1
_CHECK = b"halo-exchange wallet check"
WRONG_PASSPHRASE = "Incorrect exchange wallet passphrase."


class WalletError(HaloExchangeError):
    """The wallet refused: locked, wrong passphrase, unknown address. Nothing changed."""


class WalletState(enum.Enum):
    PLAIN = "plain"
    LOCKED = "locked"
    UNLOCKED = "unlocked"


@dataclass(frozen=True)
class Sealing:
    """What encrypting the wallet produced: the encryption metadata and every key record, now sealed."""

    meta: dict
    records: dict[str, bytes]


@dataclass(frozen=True)
class KdfParams:
    """scrypt cost; the defaults take about 0.2 s and 32 MiB here, which is what guessing costs an attacker too."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        return scrypt(passphrase.encode("utf-8"), salt=salt, n=self.n, r=self.r, p=self.p,
                      maxmem=256 * 1024 * 1024, dklen=32)


class ExchangeWallet:
    """Deposit keys by address, from the records the store kept (``records`` by address, ``meta`` the
    encryption metadata or None); changes come back as records for the store to write."""

    def __init__(self, records: dict[str, bytes], meta: dict | None, network: Network = DEVNET,
                 kdf: KdfParams = KdfParams()) -> None:
        self.network = network
        self._lock = threading.Lock()
        self._records = dict(records)
        self._aead: AESGCM | None = None
        self._meta = meta
        self._kdf = kdf if self._meta is None else KdfParams(**self._meta["kdf"])

    # -- state ----------------------------------------------------------------------------------------

    @property
    def state(self) -> WalletState:
        if self._meta is None:
            return WalletState.PLAIN
        return WalletState.UNLOCKED if self._aead is not None else WalletState.LOCKED

    @property
    def addresses(self) -> set[str]:
        with self._lock:
            return set(self._records)

    def unlock(self, passphrase: str) -> None:
        """Check ``passphrase`` against the sealed check value and keep the derived key in memory."""
        with self._lock:
            if self._meta is None:
                raise WalletError("The exchange wallet is not encrypted.")
            aead = AESGCM(self._kdf.derive(passphrase, bytes.fromhex(self._meta["salt"])))
            try:
                check = aead.decrypt(bytes.fromhex(self._meta["nonce"]), bytes.fromhex(self._meta["check"]), b"check")
            except InvalidTag:
                raise WalletError(WRONG_PASSPHRASE) from None
            if not hmac.compare_digest(check, _CHECK):
                raise WalletError(WRONG_PASSPHRASE)
            self._aead = aead

    def lock(self) -> None:
        with self._lock:
            self._aead = None

    def encrypt(self, passphrase: str) -> Sealing:
        """Encrypt every key with ``passphrase`` (from PLAIN); the wallet stays unlocked. Returns what to write."""
        if not passphrase:
            raise WalletError("A wallet passphrase cannot be empty.")
        with self._lock:
            if self._meta is not None:
                raise WalletError("The exchange wallet is already encrypted.")
            salt, nonce = os.urandom(16), os.urandom(12)
            aead = AESGCM(self._kdf.derive(passphrase, salt))
            meta = {
                "kdf": {"n": self._kdf.n, "r": self._kdf.r, "p": self._kdf.p},
                "salt": salt.hex(),
                "nonce": nonce.hex(),
                "check": aead.encrypt(nonce, _CHECK, b"check").hex(),
            }
            sealed = {address: self._seal(aead, address, self._open_plain(value))
                      for address, value in self._records.items()}
            self._records, self._meta, self._aead = sealed, meta, aead
            return Sealing(meta, dict(sealed))

    # -- keys -----------------------------------------------------------------------------------------

    def new_key(self) -> tuple[PrivateKey, str, bytes]:
        """A fresh key: (key, its address, the record that stores it, sealed when the wallet is encrypted)."""
        key = PrivateKey.generate()
        address = key.public_key().address(self.network)
        with self._lock:
            if self._meta is not None and self._aead is None:
                raise WalletError("The exchange wallet is locked. Use ExchangePassword first.")
            secret = key.to_bytes()
            record = bytes([_PLAIN]) + secret if self._aead is None else self._seal(self._aead, address, secret)
            self._records[address] = record
            return key, address, record

    def import_key(self, key: PrivateKey) -> tuple[str, bytes]:
        """Hold a key the exchange made earlier (``recover`` re-imports the WIFs it handed out): (its address,
        the record that stores it). Only a plain wallet imports: sealing needs the passphrase, and
        ``encrypt-wallet`` seals every key afterwards."""
        address = key.public_key().address(self.network)
        with self._lock:
            if self._meta is not None:
                raise WalletError("keys are imported into a plain wallet only; encrypt it afterwards")
            record = bytes([_PLAIN]) + key.to_bytes()
            self._records[address] = record
            return address, record

    def private_key(self, address: str) -> PrivateKey:
        with self._lock:
            record = self._records.get(address)
            if record is None:
                raise WalletError(f"{address} is not an exchange address")
            if record[0] == _PLAIN:
                return PrivateKey.from_bytes(self._open_plain(record))
            if self._aead is None:
                raise WalletError("The exchange wallet is locked. Use ExchangePassword first.")
            nonce, sealed = record[1:13], record[13:]
            try:
                secret = self._aead.decrypt(nonce, sealed, address.encode("ascii"))
            except InvalidTag:
                raise WalletError(f"the wallet record of {address} is damaged or not its own") from None
            return PrivateKey.from_bytes(secret)

    @staticmethod
    def _seal(aead: AESGCM, address: str, secret: bytes) -> bytes:
        nonce = os.urandom(12)
        return bytes([_SEALED]) + nonce + aead.encrypt(nonce, secret, address.encode("ascii"))

    @staticmethod
    def _open_plain(record: bytes) -> bytes:
        if record[0] != _PLAIN or len(record) != 33:
            raise WalletError("wallet record is not a plain key")
        return record[1:]
