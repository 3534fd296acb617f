"""The signed exec scheme (halo_exchange.execsig): Halo's command hash, its keys and signatures, against the
original's published vectors, and the configuration key that installs the public key."""

from __future__ import annotations

import base64
import hashlib

import pytest
from ecdsa import SECP256k1, SigningKey
from ecdsa.util import sigdecode_der, sigencode_der

from halo_exchange.config import ConfigError, parse_setting
from halo_exchange.execsig import (
    ExecKeyError,
    SignatureEncodingError,
    decode_signature,
    parse_public_key,
    public_key_hex,
    read_private_key,
    sign_command,
    txhash,
    verify,
)
from halo_exchange.rpc.execapi import _compile

# The original's test vector: private key 32 bytes of 0x11, its public key, and one signature it made.
VECTOR_KEY = SigningKey.from_string(b"\x11" * 32, curve=SECP256k1, hashfunc=hashlib.sha256)
VECTOR_PUBLIC = ("044f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa385b6b1b8ead809ca67454d9683fcf2ba"
                 "03456d6fe2c4abe2b07f0fbdbb2f1c1")
VECTOR_SOURCE = 'nonce=1\nprint "Hello world"'
VECTOR_HASH = "51313d7f5ecd1558e2412539706cb696539da6181e196df359880b5f3cf8c22c"
VECTOR_SIG = "MEYCIQCQb99eSEfBHXzUE+rr41Q6cVmPrKrEmeW85M78SoEu+QIhAMlA+cPf72iAfFxZt7zDdWvo6h7e/TRpZaov50LW5GZ2"


def test_txhash_matches_the_original_constants() -> None:
    assert txhash("pause") == "899104002d6f8e009ec6dee6844cba6603d02dc351812e422c9e166e3e670506"
    assert txhash("resume") == "b677f2790c4aabe172484a329694cfb54ec9cd93b38a3d2082b6d456f5e96f2d"
    assert txhash("") == "56944c5d3f98413ef45cf54545538103cc9f298e0575820ad3591376e2e0f65d"
    assert txhash(VECTOR_SOURCE) == VECTOR_HASH


def test_a_hex_only_command_is_hashed_as_a_number() -> None:
    """'00ab' and 'ab' are one command (leading zero bytes vanish), 'AB' too; 'abg' is text."""
    assert txhash("00ab") == txhash("ab") == txhash("AB") == hashlib.sha256(hashlib.sha256(b"\xab").digest()
                                                                            ).digest()[::-1].hex()
    assert txhash("abg") == hashlib.sha256(hashlib.sha256(b"abg").digest()).digest()[::-1].hex()
    assert txhash("é") == hashlib.sha256(hashlib.sha256("é".encode()).digest()).digest()[::-1].hex()


def test_the_vector_key_and_signature_verify() -> None:
    assert public_key_hex(VECTOR_KEY.get_verifying_key()) == VECTOR_PUBLIC
    key = parse_public_key(VECTOR_PUBLIC)
    assert verify(key, VECTOR_HASH, decode_signature(VECTOR_SIG))
    assert not verify(key, txhash("nonce=2\nprint 'Hello world'"), decode_signature(VECTOR_SIG))


def test_a_compressed_key_verifies_the_same_signatures() -> None:
    compressed = VECTOR_KEY.get_verifying_key().to_string("compressed").hex()
    assert len(compressed) == 66
    assert verify(parse_public_key(compressed), VECTOR_HASH, decode_signature(VECTOR_SIG))


def test_high_s_signatures_are_accepted_as_the_original_made_them() -> None:
    """OpenSSL does not normalise s; both twins of a signature verify."""
    r, s = sigdecode_der(base64.b64decode(VECTOR_SIG), SECP256k1.order)
    twin = sigencode_der(r, SECP256k1.order - s, SECP256k1.order)
    key = parse_public_key(VECTOR_PUBLIC)
    assert verify(key, VECTOR_HASH, twin)
    assert max(s, SECP256k1.order - s) > SECP256k1.order // 2  # one of the two is high-S


def test_sha1_and_raw_signatures_fail() -> None:
    """The original's legacy SHA-1 signatures and raw r||s are not this scheme."""
    message = VECTOR_HASH.encode()
    key = parse_public_key(VECTOR_PUBLIC)
    sha1 = VECTOR_KEY.sign_deterministic(message, hashfunc=hashlib.sha1, sigencode=sigencode_der)
    raw = VECTOR_KEY.sign_deterministic(message, hashfunc=hashlib.sha256)
    assert not verify(key, VECTOR_HASH, sha1)
    assert not verify(key, VECTOR_HASH, raw)
    assert not verify(key, VECTOR_HASH, b"")


def test_signing_here_verifies_and_is_deterministic() -> None:
    command = sign_command("result = 42", VECTOR_KEY)
    assert command == sign_command("result = 42", VECTOR_KEY)
    assert verify(parse_public_key(VECTOR_PUBLIC), txhash("result = 42"), decode_signature(command["sig"]))


@pytest.mark.parametrize("text, expected", [
    ("zz", "not hex"),
    ("04" + "00" * 64, "not a point of secp256k1"),
    ("05" + VECTOR_PUBLIC[2:], "not a SEC1 public key"),
    (VECTOR_PUBLIC[:-2], "not a SEC1 public key"),
    (VECTOR_PUBLIC[2:], "not a SEC1 public key"),  # raw X||Y without the 04
])
def test_malformed_public_keys_are_refused_with_what_was_expected(text: str, expected: str) -> None:
    with pytest.raises(ExecKeyError, match=expected):
        parse_public_key(text)


def test_the_config_key_refuses_a_malformed_key_at_start_up_and_normalises_a_good_one() -> None:
    with pytest.raises(ConfigError, match=r"--exec-pubkey 'zz': not hex"):
        parse_setting("exec_pubkey", "zz", "--exec-pubkey")
    compressed = VECTOR_KEY.get_verifying_key().to_string("compressed").hex()
    assert parse_setting("exec_pubkey", compressed.upper(), "x") == VECTOR_PUBLIC
    assert parse_setting("exec_pubkey", "", "x") is None


@pytest.mark.parametrize("sig", ["@@@", "MEYC!", 5, None])
def test_a_signature_that_is_not_base64_is_an_encoding_error(sig) -> None:
    with pytest.raises(SignatureEncodingError):
        decode_signature(sig)


def test_base64_with_line_breaks_is_read_as_the_original_read_it() -> None:
    folded = VECTOR_SIG[:40] + "\n" + VECTOR_SIG[40:] + "\n"
    assert decode_signature(folded) == base64.b64decode(VECTOR_SIG)


def test_a_key_file_holds_the_private_key_and_refuses_anything_else(tmp_path) -> None:
    good = tmp_path / "exec.key"
    good.write_text("# comment\n" + "11" * 32 + "\n")
    assert read_private_key(good).to_string() == b"\x11" * 32
    bad = tmp_path / "bad.key"
    bad.write_text("hello\n")
    with pytest.raises(ExecKeyError, match="does not hold an exec private key"):
        read_private_key(bad)
    with pytest.raises(ExecKeyError, match="cannot read"):
        read_private_key(tmp_path / "missing.key")


def test_python2_print_statements_compile_as_calls_and_nothing_else_is_rewritten(capsys) -> None:
    namespace: dict = {}
    exec(_compile('nonce=1\nprint "Hello world"\nif True:\n    print "a", 2\nprint(3)', "t"), namespace)
    assert capsys.readouterr().out == "Hello world\na 2\n3\n"
    with pytest.raises(SyntaxError):
        _compile('print "x"\nexec "y"', "t")  # other Python 2 syntax stays a SyntaxError
