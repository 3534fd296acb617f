"""The ``halo-exchange`` command: operator tools over the package.

``devnet`` runs the devnet node with exchange mode on (and its exchange API); ``node`` runs the follower node
beside bitbayd, exchange mode on; ``status`` asks a running node's operator socket what it and its exchange
are doing (halo_exchange/status.py); ``audit`` checks the ledger against the chain; ``recover`` rebuilds a lost
exchange DB from the exchange's records; ``backup`` copies the exchange DB and ``restore`` rebuilds it from a
backup (docs/backup.md); ``encrypt-wallet`` seals the exchange wallet's keys with a passphrase; ``exec-keygen``
and ``sign-exec`` make an exec key pair and sign a command for ``API(command)`` (docs/exec.md); ``peg``
inspects peg data (split a value, decode a peglevel or pegdata string, apply the supply rule). Output is plain
text for people; ``--json`` gives the facts to scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from halo_exchange import __version__
from halo_exchange.config import (
    CHAIN_SUBDIR,
    CONFIG_FILE_NAME,
    DEFAULT_DATADIR,
    EXCHANGE_SUBDIR,
    DevnodeConfig,
    ExchangeConfig,
)
from halo_exchange.errors import HaloExchangeError
from halo_exchange.execsig import (
    ExecKeyError,
    new_private_key,
    private_key_text,
    public_key_hex,
    read_private_key,
    sign_command,
    txhash,
)
from halo_exchange.files import private_umask
from halo_exchange.peg import PEG_SIZE, Fractions, PegData, PegLevel, next_supply_index

if TYPE_CHECKING:
    from halo_exchange.recover_input import BalanceRecord, DepositRecord, KeyRecord, Problem


class InvalidInput(Exception):
    """An argument of a peg tool that is not what it needs: the message says which and why (exit code 1)."""


def _check_supply(name: str, supply: int) -> int:
    if not 0 <= supply < PEG_SIZE:
        raise InvalidInput(f"{name} {supply}: a supply index is 0 to {PEG_SIZE - 1}")
    return supply


def _level_facts(level: PegLevel) -> dict[str, Any]:
    return {
        "valid": level.is_valid(),
        "cycle": level.cycle,
        "cycle_prev": level.cycle_prev,
        "buffer": level.buffer,
        "supply": level.supply,
        "supply_next": level.supply_next,
        "supply_next_next": level.supply_next_next,
        "shift": level.shift,
        "shift_last_part": level.shift_last_part,
        "shift_last_total": level.shift_last_total,
        "partial": level.is_partial(),
        "hex": level.to_hex(),
    }


def _cmd_split(args: argparse.Namespace) -> dict[str, Any]:
    if args.value < 0:
        raise InvalidInput(f"VALUE {args.value}: an amount is 0 or more satoshis")
    supplies = [_check_supply("--supply", s) for s in args.supply or [0, 3, 100, 500, 1000, PEG_SIZE - 1]]
    fractions = Fractions.std(args.value)
    return {
        "value": args.value,
        "hli": fractions.hli(),
        "at": [{"supply": s, "liquid": fractions.high(s), "reserve": fractions.low(s)} for s in supplies],
    }


def _cmd_level(args: argparse.Namespace) -> dict[str, Any]:
    level = PegLevel.from_hex(args.hex)  # never raises: what does not decode is the empty, invalid level
    if not level.is_valid():
        raise InvalidInput(f"{args.hex!r} is not a valid peglevel (hex of a v2, v1 or legacy level)")
    return _level_facts(level)


def _cmd_pegdata(args: argparse.Namespace) -> dict[str, Any]:
    pegdata = PegData.from_base64(args.base64)  # never raises: what does not decode is empty and invalid
    if not pegdata.is_valid():
        raise InvalidInput(f"{args.base64!r} is not a valid pegdata (base64 of a balance's fractions and level)")
    return {
        "valid": pegdata.is_valid(),
        "value": pegdata.value,
        "liquid": pegdata.liquid,
        "reserve": pegdata.reserve,
        "id": pegdata.id,
        "value_hli": pegdata.fractions.hli(),
        "level": _level_facts(pegdata.level),
    }


def _cmd_next_supply(args: argparse.Namespace) -> dict[str, Any]:
    votes, votes_prev = [args.inflate, args.deflate, args.nochange], args.votes_prev or [0, 0, 0]
    _check_supply("BASE", args.base)
    if min(votes + votes_prev) < 0:
        raise InvalidInput("a vote count is 0 or more")
    return {"base": args.base, "votes": votes, "votes_prev": votes_prev,
            "next": next_supply_index(args.base, votes, votes_prev)}


def _run_audit(args: argparse.Namespace) -> int:
    """Open both DBs read-only in practice, audit, print the report; 0 clean, 1 violations, 2 cannot open."""
    import plyvel

    from halo_exchange.audit import audit
    from halo_exchange.chain.reader import ChainReader
    from halo_exchange.ledger.store import ExchangeStore, load_state

    chain_path = args.chain_db or args.datadir / CHAIN_SUBDIR
    exchange_path = args.exchange_db or args.datadir / EXCHANGE_SUBDIR
    if not (exchange_path / "CURRENT").exists():
        print(f"no exchange data in {args.exchange_db or args.datadir}", file=sys.stderr)
        return 2
    if not (chain_path / "CURRENT").exists():
        print(f"no node chain data in {args.chain_db or args.datadir}", file=sys.stderr)
        return 2
    try:
        chain_db = plyvel.DB(str(chain_path), create_if_missing=False, compression=None)
    except (plyvel.Error, OSError) as exc:
        print(f"cannot open the node DB {chain_path} (is the node running?): {exc}", file=sys.stderr)
        return 2
    try:
        store = ExchangeStore(str(exchange_path))
        try:
            state = load_state(store)
            if state.book is None:
                print("the exchange DB holds no book yet: nothing to audit")
                return 0
            progress = state.cycle_update
            if progress is not None:
                # A stop cut a cycle update short: the DB is sound but half re-valued. Finish the update in
                # memory, as the next start will, and audit the result (nothing is written here).
                update = state.book.cycle_update(progress["cycle"], progress["new"], progress)
                while not update.done:
                    update.step(10_000)
                update.finish()
                print(f"a cycle update to cycle {update.cycle} was under way ({progress['position']} of "
                      f"{len(update.names)} accounts done): audited as the next start will finish it")
            report = audit(state.book, state.deposits, ChainReader(chain_db), state.coins, state.batches,
                           state.payout_state.get("debt", 0))
        finally:
            store.close()
    except HaloExchangeError as exc:
        print(f"cannot audit: {exc}", file=sys.stderr)
        return 2
    finally:
        chain_db.close()
    print(report.render())
    return 0 if report.ok else 1


def _read_passphrase(path: Path | None) -> str:
    """The new wallet passphrase: the first line of ``path``, or typed twice at the terminal."""
    if path is not None:
        return path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
    import getpass
    import termios

    if not sys.stdin.isatty():
        raise NoTerminal(NO_TERMINAL)
    try:
        first = getpass.getpass("new exchange wallet passphrase: ")
        again = getpass.getpass("again: ")
    except (EOFError, termios.error):
        raise NoTerminal(NO_TERMINAL) from None
    if again != first:
        raise ValueError("the two passphrases differ")
    return first


NO_TERMINAL = "no terminal: use --passphrase-file"


class NoTerminal(Exception):
    """No terminal to type the passphrase at (standard input is a pipe or a file)."""


def _run_encrypt_wallet(args: argparse.Namespace) -> int:
    """Seal every key of the exchange wallet (node stopped); 0 done, 1 refused, 2 cannot open."""
    import plyvel

    from halo_exchange.ledger.store import ExchangeStore, StoreError, WalletCodec, load_state
    from halo_exchange.ledger.wallet import WalletError

    exchange_path = args.exchange_db or args.datadir / EXCHANGE_SUBDIR
    if args.passphrase_file is None and not sys.stdin.isatty():
        print(NO_TERMINAL, file=sys.stderr)  # before anything is opened: getpass would only fail at its end
        return 1
    if not exchange_path.exists():
        print(f"no exchange DB at {exchange_path}", file=sys.stderr)
        return 2
    try:
        store = ExchangeStore(str(exchange_path))
    except (StoreError, plyvel.Error, OSError) as exc:  # a running node holds the DB's lock
        print(f"cannot open the exchange DB {exchange_path} (is the node running?): {exc}", file=sys.stderr)
        return 2
    try:
        wallet = load_state(store).wallet
        try:
            passphrase = _read_passphrase(args.passphrase_file)
            sealing = wallet.encrypt(passphrase)
        except NoTerminal as exc:
            print(exc, file=sys.stderr)
            return 1
        except (WalletError, ValueError, OSError) as exc:
            print(f"not encrypted: {exc}", file=sys.stderr)
            return 1
        store.write([WalletCodec.meta_op(sealing.meta)] + WalletCodec.key_ops(sealing.records))
    finally:
        store.close()
    print(f"exchange wallet encrypted ({len(sealing.records)} keys sealed). After each start, unlock it with "
          "ExchangePassword before deposit addresses can be made or withdrawals signed.")
    return 0


def _node_running(datadir: Path) -> bool:
    from node_hooks.preflight import StartupRefused, check_datadir_free

    try:
        check_datadir_free(datadir)
    except StartupRefused:
        return True
    return False


def _run_backup(args: argparse.Namespace) -> int:
    """``halo-exchange backup --to DIR``: a consistent copy of the exchange DB, made by the running node or, the
    node stopped, from its DB; 0 done, 1 refused, 2 cannot open."""
    import plyvel

    from halo_exchange.backup.restore import backup_stopped, chain_identity_of

    exchange_path = args.datadir / EXCHANGE_SUBDIR
    if _node_running(args.datadir):
        return _backup_through_node(args)
    if not (exchange_path / "CURRENT").exists():
        print(f"no exchange DB in {args.datadir}", file=sys.stderr)
        return 2
    try:
        identity = chain_identity_of(args.datadir / CHAIN_SUBDIR)
        if identity is None:
            print(f"no chain in {args.datadir}: the backup cannot name its chain", file=sys.stderr)
            return 2
        done = backup_stopped(exchange_path, args.to, identity)
    except HaloExchangeError as exc:
        print(f"no backup: {exc}", file=sys.stderr)
        return 1
    except (OSError, plyvel.Error) as exc:  # plyvel.Error: a DB that cannot be opened (damaged, in use)
        print(f"no backup: {exc}", file=sys.stderr)
        return 2
    _print_backup(done, "the stopped node")
    return 0


def _backup_through_node(args: argparse.Namespace) -> int:
    """``backup`` of a running node: asked of the node over its operator socket (its DB is never opened by a
    second process); the node takes the view between two batches and writes the copy in a thread."""
    from halo_exchange.errors import OperatorError
    from halo_exchange.operator import ask

    try:
        done = ask(_socket_of(args.datadir), "backup", {"to": str(args.to.resolve())}, timeout=600)
    except OperatorError as exc:
        print(f"the node is running on {args.datadir} and made no copy: {exc}", file=sys.stderr)
        return 1
    _print_backup(done, "the running node")
    return 0


def _print_backup(done: dict, source: str) -> None:
    print(f"backed up the exchange DB of {source} at batch {done['sequence']} to {done['to']}: {done['keys']} "
          f"keys, {done['bytes']} bytes in {done['seconds']:.2f} s")


def _run_restore(args: argparse.Namespace) -> int:
    """``halo-exchange restore --from DIR``: rebuild the exchange DB of a stopped node; 0 done, 1 refused."""
    import plyvel

    from halo_exchange.backup.restore import chain_identity_of, restore

    if _node_running(args.datadir):
        print(f"the node is running on {args.datadir}: stop it before restoring", file=sys.stderr)
        return 1
    try:
        identity = chain_identity_of(args.datadir / CHAIN_SUBDIR)
        if identity is None:
            print(f"note: no chain in {args.datadir} yet: the backup's chain cannot be checked")
        done = restore(args.source, args.datadir / EXCHANGE_SUBDIR, identity, force=args.force)
    except (HaloExchangeError, OSError, plyvel.Error) as exc:
        print(f"not restored: {exc}", file=sys.stderr)
        return 1
    print(done.render())
    return 0


def _print_text(facts: Any, indent: str = "") -> None:
    if isinstance(facts, dict):
        for key, value in facts.items():
            if isinstance(value, (dict, list)):
                print(f"{indent}{key}:")
                _print_text(value, indent + "  ")
            else:
                print(f"{indent}{key}: {value}")
    elif isinstance(facts, list):
        for item in facts:
            if isinstance(item, dict):
                print(indent + ", ".join(f"{k} {v}" for k, v in item.items()))
            else:
                print(f"{indent}{item}")


def _overview() -> None:
    print(f"halo-exchange {__version__}: exchange mode for a Halo-style BitBay node")
    print()
    print("Available now:")
    print("  halo-exchange devnet [--datadir DIR]             run the devnet node with exchange mode")
    print(f"                                                   (control RPC on {DevnodeConfig.rpc_host}:"
          f"{DevnodeConfig.rpc_port}; settings in")
    print(f"                                                   DIR/{CONFIG_FILE_NAME} or --config FILE)")
    print("  halo-exchange node --datadir DIR --bitbayd URL  follow bitbayd with exchange mode (docs/follower.md)")
    print("  halo-exchange status [--datadir DIR] [--json]    what a running node and its exchange are doing")
    print("                                                   (asks DIR/exchange.sock; exit 0 healthy, 1 degraded,")
    print("                                                   2 not reachable; --execs lists exec commands)")
    print("  halo-exchange audit --datadir DIR                check the ledger against the chain (node stopped)")
    print("  halo-exchange encrypt-wallet --datadir DIR       seal the exchange wallet's keys (node stopped)")
    print("  halo-exchange recover --datadir DIR --balances F --keys F [--deposits F] [--dry-run]")
    print("                                                   rebuild a lost exchange DB (node stopped)")
    print("  halo-exchange backup --to DIR --datadir DIR      copy the exchange DB (docs/backup.md)")
    print("  halo-exchange restore --from DIR --datadir DIR   rebuild the exchange DB from a backup (node stopped)")
    print("  halo-exchange exec-keygen --out KEYFILE          a key pair for the signed exec hook API(command)")
    print("  halo-exchange sign-exec FILE --key KEYFILE       sign a command for API(command) (docs/exec.md)")
    print("  halo-exchange peg split VALUE [--supply S ...]   liquid/reserve of a new amount")
    print("  halo-exchange peg level HEX                      decode a peglevel (v2, v1, legacy)")
    print("  halo-exchange peg pegdata BASE64                 decode a balance pegdata")
    print("  halo-exchange peg next-supply BASE I D N [I D N] apply the supply index rule")
    print("Add --json to the peg tools for machine-readable output.")
    print()
    print(f"The exchange API listens on {ExchangeConfig.api_host}:{ExchangeConfig.api_port} inside `devnet` and "
          "`node` (docs/api.md). docs/operator-guide.md: install, run, monitor. `make test` runs the suite;")
    print("`make bench` benchmarks.")


def _socket_of(datadir: Path) -> Path:
    """The operator socket of the node on ``datadir``: its config file's ``operator_socket``, else
    ``DATADIR/exchange.sock`` (a config file the node could not have started with is no reason to look
    elsewhere)."""
    from halo_exchange.config import ConfigError, read_config_file

    config_file = datadir / CONFIG_FILE_NAME
    if config_file.is_file():
        try:
            configured = read_config_file(config_file, ("exchange",)).get("operator_socket")
        except ConfigError:
            configured = None
        if configured is not None:
            return configured
    return ExchangeConfig(exchange_dir=datadir / EXCHANGE_SUBDIR).operator_socket_path


def _run_follower_file_status(args: argparse.Namespace) -> int:
    """What a follower's status file says, for a node whose exchange does not answer: 0 following, 1 syncing
    or degraded, 2 not running."""
    from node_hooks.follower.status_file import STATUS_FILE_NAME, read_status

    record, problem = read_status(args.datadir / STATUS_FILE_NAME)
    if args.json:
        print(json.dumps({"running": not problem, "problem": problem, "status": record}, indent=2, sort_keys=True))
    elif record is None:
        print(problem, file=sys.stderr)
    else:
        eta = record.get("eta_seconds")
        print(f"node: {record['state']}{' (' + problem + ')' if problem else ''}")
        print(f"  height {record['height']} of {record.get('upstream_height')}, first block {record['first_height']}, "
              f"{record['blocks_per_second']:.1f} blocks/s" + (f", ETA {eta:.0f} s" if eta else ""))
        if record.get("last_error"):
            print(f"  last error: {record['last_error']}")
    if problem:
        return 2
    return 0 if record is not None and record.get("state") == "following" else 1


def _run_status(args: argparse.Namespace) -> int:
    """``halo-exchange status``: ask the running node's operator socket (no database is opened), merge a
    follower's status file, print; 0 healthy, 1 degraded, 2 not reachable."""
    from halo_exchange.errors import OperatorError, OperatorUnreachable, UnknownOperatorCommand
    from halo_exchange.operator import ask
    from halo_exchange.status import UNREACHABLE, assess, render
    from node_hooks.follower.status_file import STATUS_FILE_NAME, read_status

    socket_path = args.socket or _socket_of(args.datadir)
    status_file = args.datadir / STATUS_FILE_NAME
    try:
        report = ask(socket_path, "status")
    except OperatorUnreachable as exc:
        if args.socket is None and status_file.exists():
            return _run_follower_file_status(args)  # a follower without its exchange: what its file says
        if args.json:
            print(json.dumps({"reachable": False, "problem": str(exc), "socket": str(socket_path)}, indent=2))
        print(f"halo-exchange status: not reachable: {exc}", file=sys.stderr)
        return UNREACHABLE
    except OperatorError as exc:
        print(f"halo-exchange status: {exc}", file=sys.stderr)
        return UNREACHABLE
    report["reachable"] = True
    if status_file.exists():
        record, problem = read_status(status_file)
        report.update(running=not problem, problem=problem, status=record)
    execs: list | None | bool = False
    if args.execs:
        try:
            answer = ask(socket_path, "execs")
            execs = answer.get("records", []) if isinstance(answer, dict) else list(answer or [])
        except UnknownOperatorCommand:
            execs = None
        except OperatorError as exc:
            print(f"halo-exchange status: {exc}", file=sys.stderr)
            return UNREACHABLE
    code, problems = assess(report)
    if args.json:
        report["health"] = {"code": code, "problems": problems}
        if execs is not False:
            report["execs"] = execs
        print(json.dumps(report, indent=2, sort_keys=True))
        if execs is None:
            print("this exchange has no exec log", file=sys.stderr)
    else:
        print(render(report, execs))
    return code


def _add_recover_arguments(parser: argparse.ArgumentParser) -> None:
    """``recover``'s arguments (docs/recovery.md); the planning and the writing are halo_exchange/recover.py's."""
    parser.add_argument("--datadir", type=Path, required=True, help="the node's data directory")
    parser.add_argument("--chain-db", type=Path, help="node chain DB (default: DATADIR/chain)")
    parser.add_argument("--exchange-db", type=Path, help="exchange DB to rebuild (default: DATADIR/exchange)")
    parser.add_argument("--balances", type=Path, required=True, help="CSV of user,liquid,reserve (satoshis)")
    parser.add_argument("--keys", type=Path, required=True, help="the exchange's WIF private keys, one a line")
    parser.add_argument("--deposits", type=Path, help="CSV of user,txid:n: the users' original deposits")
    parser.add_argument("--dry-run", action="store_true", help="print the report, write nothing")
    parser.add_argument("--force", action="store_true",
                        help="replace an exchange DB that holds data (it is moved aside, never deleted)")
    parser.add_argument("--cover-reserve-with-liquid", action="store_true",
                        help="pay reserve the chain no longer holds from leftover liquid (users whole in value, "
                             "more liquid and less reserve than recorded)")
    parser.add_argument("--accept-short", action="store_true",
                        help="write the recovery even when the funds found cannot restore every user "
                             "(each user gets the same proportion of its record)")


def run_recover(args: argparse.Namespace, stderr: TextIO | None = None) -> int:
    """``halo-exchange recover``: exit 0 every user restored (exactly, or in value with
    ``--cover-reserve-with-liquid``), 1 input refused (nothing written), 2 a DB cannot be opened (node running?)
    or written, 3 the funds do not cover the records (written only with ``--accept-short``)."""
    import plyvel

    from halo_exchange.chain.reader import ChainReader
    from halo_exchange.recover import (
        EXIT_CANNOT_OPEN,
        EXIT_INPUT,
        EXIT_OK,
        EXIT_SHORT,
        RecoveryInputError,
        ScanProgress,
        exchange_db_has_data,
        plan_recovery,
        write_exchange_db,
    )
    from halo_exchange.recover_input import check_deposits, parse_balances, parse_deposits, parse_keys, read_text

    err = stderr or sys.stderr
    chain_path = args.chain_db or args.datadir / CHAIN_SUBDIR
    exchange_path = args.exchange_db or args.datadir / EXCHANGE_SUBDIR
    if not (chain_path / "CURRENT").exists():
        print(f"no node chain data at {chain_path}", file=err)
        return EXIT_CANNOT_OPEN

    problems: list[Problem] = []
    balances: list[BalanceRecord] = []
    deposits: list[DepositRecord] = []
    text = read_text(args.balances, problems)
    if text is not None:
        balances, found = parse_balances(text, str(args.balances))
        problems += found
    if args.deposits is not None:
        text = read_text(args.deposits, problems)
        if text is not None:
            deposits, found = parse_deposits(text, str(args.deposits))
            problems += found + check_deposits(deposits, balances, str(args.deposits))
    keys_text = read_text(args.keys, problems)

    try:
        chain_db = plyvel.DB(str(chain_path), create_if_missing=False, compression=None)
    except (plyvel.Error, OSError) as exc:
        print(f"cannot open the node DB {chain_path} (is the node running?): {exc}", file=err)
        return EXIT_CANNOT_OPEN
    try:
        reader = ChainReader(chain_db)
        with reader.snapshot() as view:
            keys: list[KeyRecord] = []
            if keys_text is not None:
                keys, found = parse_keys(keys_text, str(args.keys), view.network())
                problems += found
            if problems:
                return _refuse_recovery_input(problems, err)
            try:
                has_data = exchange_db_has_data(exchange_path)
            except (plyvel.Error, OSError) as exc:
                print(f"cannot open the exchange DB {exchange_path} (is the node running?): {exc}", file=err)
                return EXIT_CANNOT_OPEN
            if has_data and not args.force and not args.dry_run:
                print(f"{exchange_path} holds an exchange DB with data: recover rebuilds a lost DB and replaces "
                      "none by default. If this one is wrong, run again with --force (it is moved aside, never "
                      "deleted). Nothing written.", file=err)
                return EXIT_INPUT
            try:
                recovery = plan_recovery(view, keys, balances, deposits,
                                         deposits_path=str(args.deposits or "DEPOSITS.csv"),
                                         cover_reserve_with_liquid=args.cover_reserve_with_liquid,
                                         progress=ScanProgress(err))
            except RecoveryInputError as exc:
                return _refuse_recovery_input(exc.problems, err)
            except HaloExchangeError as exc:
                print(f"recover: {exc}. Nothing written.", file=err)
                return EXIT_INPUT
    finally:
        chain_db.close()

    report = recovery.report
    short = bool(report.short)
    if args.dry_run:
        report.outcome = "dry run: nothing written" + (" (an exchange DB with data is there: --force would move it "
                                                       "aside)" if has_data else "")
    elif short and not args.accept_short:
        report.outcome = (f"the funds found cannot restore {len(report.short)} user(s): nothing written. Check the "
                          "files and keys; where only reserve is short, --cover-reserve-with-liquid pays it in "
                          "liquid; to write this recovery as it stands, run again with --accept-short")
    else:
        try:
            moved = write_exchange_db(exchange_path, recovery.ops())
        except (plyvel.Error, OSError, HaloExchangeError) as exc:
            # Before the rename nothing is in place; the rename itself is atomic. Say where things stand.
            print(f"recover: writing the new exchange DB failed: {exc}. {exchange_path} is "
                  + ("in place" if exchange_path.exists() else "absent")
                  + "; whatever was there before is unchanged or moved aside. Run recover again.", file=err)
            return EXIT_CANNOT_OPEN
        report.outcome = f"written to {exchange_path}" + (f" (the DB that was there is now {moved})" if moved
                                                          else "")
        report.outcome += ("; run `halo-exchange audit`, then start the node (with a new exec_pubkey if the signed "
                           "exec hook is configured: the replay guard was in the lost DB)")
    print(report.render())
    return EXIT_SHORT if short else EXIT_OK


def _refuse_recovery_input(problems: list[Problem], err: TextIO) -> int:
    from halo_exchange.recover import EXIT_INPUT

    print(f"recover: {len(problems)} problem(s) in the input, nothing written:", file=err)
    for problem in problems:
        print(f"  {problem}", file=err)
    return EXIT_INPUT


def _add_exec_commands(commands: argparse._SubParsersAction) -> None:
    """``exec-keygen`` and ``sign-exec``, the operator's side of the signed exec hook (docs/exec.md): a key pair
    whose private key goes into a new 0600 file, and a command signed as ``API(command)`` takes it."""
    keygen = commands.add_parser("exec-keygen", help="make an exec key pair for the signed API(command) hook; "
                                                     "prints the public key to install as exec_pubkey")
    keygen.add_argument("--out", type=Path, required=True, help="the private key file to create (mode 0600)")
    keygen.set_defaults(handler=None, run=_run_exec_keygen)

    sign = commands.add_parser("sign-exec", help="sign a command for API(command); prints it as JSON")
    sign.add_argument("file", help="the command's Python source ('-': standard input)")
    sign.add_argument("--key", type=Path, required=True, help="the private key file exec-keygen made")
    sign.add_argument("--nonce", type=int, metavar="N",
                      help="put nonce=N (a whole number) on the first line, so that a source can be sent again")
    sign.set_defaults(handler=None, run=_run_sign_exec)


def _run_exec_keygen(args: argparse.Namespace) -> int:
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


def _run_sign_exec(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="halo-exchange", description="halo-exchange: operator tools of the "
                                     "exchange mode of a Halo-style BitBay node")
    parser.add_argument("--version", action="version", version=f"halo-exchange {__version__}")
    commands = parser.add_subparsers(dest="command")

    devnet = commands.add_parser("devnet", help="run the devnet node (exchange mode on)")
    # The node lives on the node side of the boundary (node_hooks); importing it only when this command
    # runs keeps halo_exchange importable without it.
    from node_hooks.devnode import main as devnode_main

    devnode_main.add_arguments(devnet)
    devnet.set_defaults(handler=None, run=devnode_main.start)

    node = commands.add_parser("node", help="run the follower node beside bitbayd (exchange mode on)")
    from node_hooks.follower import main as follower_main

    follower_main.add_arguments(node)
    node.set_defaults(handler=None, run=follower_main.start)

    status = commands.add_parser("status", help="what a running node and its exchange are doing (exit 0 healthy, "
                                                 "1 degraded, 2 not reachable)")
    status.add_argument("--datadir", type=Path, default=DEFAULT_DATADIR,
                        help=f"the node's data directory (default: {DEFAULT_DATADIR})")
    status.add_argument("--socket", type=Path, help="the operator socket (default: operator_socket in the data "
                                                    "dir's config file, else DATADIR/exchange.sock)")
    status.add_argument("--json", action="store_true", help="print JSON, for monitoring")
    status.add_argument("--execs", action="store_true", help="also list the signed exec commands received")
    status.set_defaults(handler=None, run=_run_status)

    audit = commands.add_parser("audit", help="check every ledger invariant (node stopped); exit 1 on a violation")
    audit.add_argument("--datadir", type=Path, required=True, help="the node's data directory")
    audit.add_argument("--chain-db", type=Path, help="node chain DB (default: DATADIR/chain)")
    audit.add_argument("--exchange-db", type=Path, help="exchange DB (default: DATADIR/exchange)")
    audit.set_defaults(handler=None, run=_run_audit)

    encrypt = commands.add_parser("encrypt-wallet", help="seal the exchange wallet's keys with a passphrase "
                                                         "(node stopped); ExchangePassword unlocks it")
    encrypt.add_argument("--datadir", type=Path, required=True, help="the node's data directory")
    encrypt.add_argument("--exchange-db", type=Path, help="exchange DB (default: DATADIR/exchange)")
    encrypt.add_argument("--passphrase-file", type=Path,
                         help="read the passphrase from the first line of this file instead of the terminal")
    encrypt.set_defaults(handler=None, run=_run_encrypt_wallet)

    recover = commands.add_parser("recover", help="rebuild a lost exchange DB from the exchange's records of "
                                                  "balances, keys and deposits (node stopped; docs/recovery.md)")
    _add_recover_arguments(recover)
    recover.set_defaults(handler=None, run=run_recover)

    backup = commands.add_parser("backup", help="a consistent copy of the exchange DB (running or stopped node)")
    backup.add_argument("--to", type=Path, required=True, metavar="DIR", help="a new (or empty) directory for the copy")
    backup.add_argument("--datadir", type=Path, required=True, metavar="DIR", help="the node's data directory")
    backup.set_defaults(handler=None, run=_run_backup)

    restore = commands.add_parser("restore", help="rebuild the exchange DB from a backup (node stopped)")
    restore.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR",
                         help="the backup directory (backup_dir, or a copy made by backup --to)")
    restore.add_argument("--datadir", type=Path, required=True, metavar="DIR", help="the node's data directory")
    restore.add_argument("--force", action="store_true",
                         help="move an existing exchange DB aside (DATADIR/exchange.before-restore-TIME) and restore")
    restore.set_defaults(handler=None, run=_run_restore)

    _add_exec_commands(commands)

    peg = commands.add_parser("peg", help="inspect peg arithmetic and peg data")
    peg_commands = peg.add_subparsers(dest="peg_command", required=True)

    def add(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = peg_commands.add_parser(name, help=help_text)
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(handler=handler)
        return sub

    split = add("split", _cmd_split, "liquid and reserve of the standard split of VALUE satoshis")
    split.add_argument("value", type=int, help="amount in satoshis")
    split.add_argument("--supply", type=int, action="append", help="supply index (repeatable)")
    add("level", _cmd_level, "decode a peglevel hex string").add_argument("hex")
    add("pegdata", _cmd_pegdata, "decode a pegdata base64 string").add_argument("base64")
    nxt = add("next-supply", _cmd_next_supply, "supply index after a cycle's votes")
    nxt.add_argument("base", type=int, metavar="BASE", help=f"supply index the votes start from (0 to {PEG_SIZE - 1})")
    # Three positionals, not one of nargs=3: argparse repeats a one-word metavar three times, and a tuple
    # metavar on a positional breaks its --help (Python 3.11).
    for vote in ("inflate", "deflate", "nochange"):
        nxt.add_argument(vote, type=int, metavar=vote.upper(), help=f"this cycle's {vote} votes")
    nxt.add_argument("--prev", dest="votes_prev", type=int, nargs=3, metavar=("I", "D", "N"),
                     help="previous cycle's votes, inflate deflate nochange (default: 0 0 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    private_umask()  # whatever a command creates (DB files, logs) is the operator's alone: 0600 / 0700
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        _overview()
        return 0
    if getattr(args, "run", None) is not None:
        return args.run(args)
    try:
        facts = args.handler(args)
    except (InvalidInput, HaloExchangeError) as exc:  # HaloExchangeError: an amount past int64, say
        print(f"halo-exchange peg {args.peg_command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        _print_text(facts)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
