"""Send a signed exec command to a running exchange and print its answer. Standard library only.

    halo-exchange sign-exec command.py --key exec.key --nonce 7 > command.json
    python3 contrib/exec_client.py command.json [--url http://127.0.0.1:55779]

The file is the JSON ``halo-exchange sign-exec`` prints ({"exec": source, "sig": base64}); ``-`` reads it from
standard input. The answer is printed as it came: text as is (a traceback is text too), anything else as JSON.

Exit codes: 0 the command ran (its answer is printed, even a traceback: the command itself raised); 1 the
exchange refused it ("Signature failed", "Command sent previously", False when no exec key is installed, or a
malformed command); 2 the exchange could not be asked (not reachable, an XML-RPC fault, a bad file).
"""

import argparse
import json
import sys
import xmlrpc.client

REFUSALS = ("Signature failed", "Command sent previously", "The command must be", "The command's 'exec'")


def main(argv=None):
    parser = argparse.ArgumentParser(description="send a signed exec command to API(command)")
    parser.add_argument("file", help="the JSON halo-exchange sign-exec printed ('-': standard input)")
    parser.add_argument("--url", default="http://127.0.0.1:55779", help="the exchange API (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        command = json.loads(text)
    except (OSError, ValueError) as exc:
        print("exec_client: cannot read %s: %s" % (args.file, exc), file=sys.stderr)
        return 2
    if not isinstance(command, dict) or not isinstance(command.get("exec"), str) or not isinstance(
            command.get("sig"), str):
        print("exec_client: %s is not a signed command ({\"exec\": ..., \"sig\": ...})" % args.file, file=sys.stderr)
        return 2
    transport = _TimeoutTransport(args.timeout)
    try:
        answer = xmlrpc.client.ServerProxy(args.url, transport=transport).API(
            {"exec": command["exec"], "sig": command["sig"]})
    except xmlrpc.client.Fault as fault:
        print("exec_client: the exchange answered fault %d: %s" % (fault.faultCode, fault.faultString),
              file=sys.stderr)
        return 2
    except (OSError, xmlrpc.client.ProtocolError) as exc:
        print("exec_client: cannot reach %s: %s" % (args.url, exc), file=sys.stderr)
        return 2
    print(answer if isinstance(answer, str) else json.dumps(answer))
    if answer is False:
        print("exec_client: the exchange has no exec key installed (exec_pubkey)", file=sys.stderr)
        return 1
    if isinstance(answer, str) and answer.startswith(REFUSALS):
        return 1
    return 0


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout):
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


if __name__ == "__main__":
    sys.exit(main())
