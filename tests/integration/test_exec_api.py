"""API(command), the signed exec hook, over the stdlib XML-RPC client against a devnet node with exchange mode:
the original's vector runs, replays are refused for good (a restart included), a bad signature cannot spend a
command, the namespace's operations keep the API's rules, and the exact "pause"/"resume" texts work."""

from __future__ import annotations

import hashlib
import logging
import time

import pytest
from ecdsa import SECP256k1, SigningKey

from halo_exchange.execsig import sign_command, txhash
from tests.framework import ServiceHarness, new_address

VECTOR_PUBLIC = ("044f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa385b6b1b8ead809ca67454d9683fcf2ba"
                 "03456d6fe2c4abe2b07f0fbdbb2f1c1")
VECTOR_COMMAND = {"exec": 'nonce=1\nprint "Hello world"',
                  "sig": "MEYCIQCQb99eSEfBHXzUE+rr41Q6cVmPrKrEmeW85M78SoEu+QIhAMlA+cPf72iAfFxZt7zDdWvo6h7e/"
                         "TRpZaov50LW5GZ2"}
KEY = SigningKey.from_string(b"\x11" * 32, curve=SECP256k1, hashfunc=hashlib.sha256)
OTHER_KEY = SigningKey.from_string(b"\x22" * 32, curve=SECP256k1, hashfunc=hashlib.sha256)


@pytest.fixture
def exchange(tmp_path, reactor_thread):
    harness = ServiceHarness(tmp_path, exec_pubkey=VECTOR_PUBLIC)
    yield harness
    harness.close()


def records(harness: ServiceHarness) -> dict[str, dict]:
    service = harness.service
    return {record["hash"]: record for record in service.call(lambda engine: service.api.exec_hook.records(engine))}


def test_the_original_vector_runs_once_and_its_replay_is_refused(exchange, caplog) -> None:
    """The signature published with the original, made by highlevelcrypto.sign, runs its command (the Python 2
    print statement prints into the log) and answers True; sent again, "Command sent previously"."""
    with caplog.at_level(logging.INFO, logger="halo_exchange.exec"):
        assert exchange.api.API(VECTOR_COMMAND) is True
    assert "prints: Hello world" in caplog.text
    assert exchange.api.API(VECTOR_COMMAND) == "Command sent previously"
    record = records(exchange)[txhash(VECTOR_COMMAND["exec"])]
    assert record["state"] == "done" and record["outcome"] == "True" and record["source"] == VECTOR_COMMAND["exec"]


def test_a_bad_signature_first_does_not_poison_the_command(exchange) -> None:
    """Sending a command's text with a bad signature records nothing: the good signature still runs it."""
    source = "nonce=2\nresult = 42"
    assert exchange.api.API({"exec": source, "sig": VECTOR_COMMAND["sig"]}) == "Signature failed"
    assert exchange.api.API(sign_command(source, OTHER_KEY)) == "Signature failed"
    assert records(exchange) == {}
    assert exchange.api.API(sign_command(source, KEY)) == 42
    assert exchange.api.API(sign_command(source, KEY)) == "Command sent previously"


def test_replays_are_refused_after_a_restart(exchange) -> None:
    command = sign_command("nonce=3\nresult = 'ran'", KEY)
    assert exchange.api.API(command) == "ran"
    exchange.close()
    exchange.open()
    assert exchange.api.API(command) == "Command sent previously"
    assert exchange.api.API(sign_command("nonce=4\nresult = 'ran'", KEY)) == "ran"


def test_without_a_key_the_hook_answers_false_and_takes_no_password(tmp_path, reactor_thread) -> None:
    with ServiceHarness(tmp_path) as harness:
        assert harness.api.SetPassword("pw", "") is True
        assert harness.api.API(sign_command("result = 1", KEY)) is False
    with ServiceHarness(tmp_path, exec_pubkey=VECTOR_PUBLIC) as harness:  # a password set: not asked for here
        assert harness.api.API(sign_command("result = 1", KEY)) == 1


@pytest.mark.parametrize("command, answer", [
    ("result = 1", "The command must be a struct with 'exec' (the source) and 'sig' (its base64 signature)."),
    ({"exec": "result = 1"}, "The command must be a struct with 'exec' (the source) and 'sig' (its base64 "
                             "signature)."),
    ({"exec": 5, "sig": "AAAA"}, "The command's 'exec' must be text."),
    ({"exec": "result = 1", "sig": "not base64!"}, "Signature failed: the signature is not valid base64."),
    ({"exec": "result = 1", "sig": 7}, "Signature failed: the signature must be base64 text."),
])
def test_malformed_commands_are_refused_with_a_string_and_record_nothing(exchange, command, answer) -> None:
    assert exchange.api.API(command) == answer
    assert records(exchange) == {}
    assert exchange.api.API(sign_command("result = 1", KEY)) == 1  # not spent by the refusal


def test_answers_of_any_kind(exchange) -> None:
    """result is answered as XML-RPC carries it, else as its repr; an exception as its traceback text."""
    assert exchange.api.API(sign_command("result = {'a': [1, 'x']}", KEY)) == {"a": [1, "x"]}
    assert exchange.api.API(sign_command("result = None", KEY)) == "None"
    assert exchange.api.API(sign_command("result = {1, 2}", KEY)) == "{1, 2}"
    assert exchange.api.API(sign_command("result = 2 ** 70", KEY)) == str(2 ** 70)
    crashed = exchange.api.API(sign_command("nonce=1\nx = 1 / 0", KEY))
    assert crashed.startswith("Traceback (most recent call last):") and "ZeroDivisionError" in crashed
    assert "<exec " in crashed and "execapi.py" not in crashed  # the command's frames, not the hook's
    assert "SyntaxError" in exchange.api.API(sign_command("def (", KEY))
    exited = exchange.api.API(sign_command("import sys\nsys.exit(3)", KEY))
    assert "SystemExit: 3" in exited
    assert exchange.api.GetCycle("") == 0  # the exchange still answers
    states = sorted(record["state"] for record in records(exchange).values())
    assert states == ["done"] * 4 + ["error"] * 3


def test_the_exchange_operations_keep_the_api_rules_and_are_durable(exchange) -> None:
    exchange.credit("alice", 500_000_000)
    assert exchange.api.API(sign_command("result = exchange.trade('alice', 100000000, 'bobby')", KEY)) is True
    assert exchange.api.GetBalance("bobby", "")["liquid"] == 100_000_000
    refused = exchange.api.API(sign_command("result = exchange.trade('bobby', 10**15, 'carole')", KEY))
    assert "CommandRefused" in refused and exchange.api.GetBalance("carole", "") is False
    listing = exchange.api.API(sign_command("result = exchange.users()", KEY))
    assert listing == ["alice", "bobby"]
    chained = ("d = exchange.balance('bobby')\n"
               "d.addCallback(lambda b: b['liquid'] + b['reserve'])\n"
               "result = d")
    assert exchange.api.API(sign_command(chained, KEY)) == 100_000_000
    exchange.close()
    exchange.open()
    assert exchange.api.GetBalance("bobby", "")["liquid"] == 100_000_000  # the trade was durable
    assert exchange.audit().ok


def test_withdraw_from_a_command_obeys_the_paused_state(exchange) -> None:
    exchange.credit("alice", 500_000_000)
    address = new_address()
    source = f"result = exchange.withdraw('alice', 200000000, {address!r})"
    assert exchange.api.StartExchange("", 0) is True
    assert "Exchange is stopped." in exchange.api.API(sign_command("nonce=1\n" + source, KEY))
    assert exchange.api.StartExchange("", 1) is True
    ok, withdrawal_id = exchange.api.API(sign_command("nonce=2\n" + source, KEY))
    assert ok is True and exchange.api.CheckWithdraw(withdrawal_id, 0, "")["status"] == "queued"


def test_pause_and_resume_by_their_exact_texts(exchange) -> None:
    assert exchange.api.StartExchange("", 1) is True
    assert exchange.api.API(sign_command("pause", KEY)) is True
    assert exchange.api.StartExchange("", 1, 1) is False
    assert exchange.api.Trade("a", 1, "b") == "Exchange is stopped."
    assert exchange.api.API(sign_command("resume", KEY)) is True
    assert exchange.api.StartExchange("", 1, 1) is True
    assert exchange.api.API(sign_command("pause", KEY)) == "Command sent previously"
    assert exchange.api.API(sign_command("nonce=1\nresult = exchange.pause()", KEY)) is True
    assert exchange.api.StartExchange("", 1, 1) is False


def test_the_log_names_each_command_by_hash_with_its_duration_and_the_audit_trail_keeps_it(exchange, caplog) -> None:
    command = sign_command("nonce=9\nresult = 'x'", KEY)
    with caplog.at_level(logging.INFO):
        exchange.api.API(command)
        exchange.api.API(command)
        exchange.api.API({"exec": "nonce=10", "sig": command["sig"]})
    name = txhash(command["exec"])
    assert f"exec {name} done in " in caplog.text
    assert f"admin: API command {name}: ran" in caplog.text
    assert f"admin: API command {name}: refused: 'Command sent previously'" in caplog.text
    assert f"admin: API command {txhash('nonce=10')}: refused: 'Signature failed'" in caplog.text


def test_records_keep_the_first_200_characters(exchange) -> None:
    source = "nonce=1\n" + "x = 1\n" * 100 + "result = 'y' * 500"
    assert exchange.api.API(sign_command(source, KEY)) == "y" * 500
    record = records(exchange)[txhash(source)]
    assert record["source"] == source[:200] and record["outcome"] == "y" * 200
    assert record["duration_ms"] >= 0 and record["time"] > 1.7e9


def test_a_peer_sending_bad_signatures_backs_off_and_then_its_good_command_runs(exchange) -> None:
    """After five bad signatures a peer's commands are answered "Signature failed" unchecked for a while (a
    verification costs milliseconds of the only API thread); nothing is recorded, so the command runs later."""
    for n in range(6):
        assert exchange.api.API(sign_command(f"nonce={n}\nresult = 1", OTHER_KEY)) == "Signature failed"
    good = sign_command("nonce=100\nresult = 'late'", KEY)
    assert exchange.api.API(good) == "Signature failed"  # backing off: not checked
    assert records(exchange) == {}
    time.sleep(0.3)  # the first back-off is 0.25 s
    assert exchange.api.API(good) == "late"
