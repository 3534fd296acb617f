"""The operator's side of the signed exec hook: ``halo-exchange exec-keygen`` and ``halo-exchange sign-exec``.

``exec-keygen --out KEYFILE`` makes a key pair: the private key goes into a new file only its owner can read
(mode 0600, never overwritten), and the public key is printed, for the exchange's ``exec_pubkey`` setting.
``sign-exec FILE --key KEYFILE [--nonce N]`` signs a command (``-`` reads it from standard input) and prints the
struct ``API(command)`` takes, as JSON; ``contrib/exec_client.py`` sends it. ``--nonce N`` puts ``nonce=N`` on a
line of its own before the source, so that the same source can be run again: an exchange runs each signed text
once, ever.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from halo_exchange.execsig import (
    ExecKeyError,
    new_private_key,
    private_key_text,
    public_key_hex,
    read_private_key,
    sign_command,
    txhash,
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    keygen = commands.add_parser("exec-keygen", help="make an exec key pair for the signed API(command) hook; "
                                                     "prints the public key to install as exec_pubkey")
    keygen.add_argument("--out", type=Path, required=True, help="the private key file to create (mode 0600)")
    keygen.set_defaults(handler=None, run=run_keygen)

    sign = commands.add_parser("sign-exec", help="sign a command for API(command); prints it as JSON")
    sign.add_argument("file", help="the command's Python source ('-': standard input)")
    sign.add_argument("--key", type=Path, required=True, help="the private key file exec-keygen made")
    sign.add_argument("--nonce", type=int, metavar="N",
                      help="put nonce=N (a whole number) on the first line, so that a source can be sent again")
    sign.set_defaults(handler=None, run=run_sign)


def run_keygen(args: argparse.Namespace) -> int:
    key = new_private_key()
    try:
        # O_EXCL: an existing key file (perhaps the one the exchange trusts) is never replaced.
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"halo-exchange exec-keygen: {args.out} exists; choose another file (a key is never overwritten)",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"halo-exchange exec-keygen: cannot create {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(private_key_text(key))
    public = public_key_hex(key.get_verifying_key())
    print(public)
    print(f"The private key is in {args.out} (mode 0600): keep it off the exchange's machine. Install the public "
          f"key above in the exchange's config file (exec_pubkey = {public[:8]}...) or with --exec-pubkey, and "
          "restart the node.", file=sys.stderr)
    return 0


def run_sign(args: argparse.Namespace) -> int:
    try:
        key = read_private_key(args.key)
        source = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except ExecKeyError as exc:
        print(f"halo-exchange sign-exec: {exc}", file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        print(f"halo-exchange sign-exec: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    if args.nonce is not None:  # a whole number, so that the line is Python that runs
        source = f"nonce={args.nonce}\n{source}"
    command = sign_command(source, key)
    print(json.dumps(command))
    print(f"command {txhash(source)}", file=sys.stderr)
    return 0
