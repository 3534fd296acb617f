"""The exchange API under load (issue 5): durable Trade calls per second with 1 and 8 client processes, next to
a baseline measured in the same run (a single-threaded stdlib SimpleXMLRPCServer doing the same trades on an
in-memory dict, as the original served them, not durable), and GetBalance latency while blocks connect."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.framework import ServiceHarness

SECONDS_PER_RUN = 3.0

# Each client process starts, connects, then waits for "go" on stdin, so that interpreter start-up is not
# counted; all clients then call for the same fixed time and print how many calls were answered.
CLIENT = textwrap.dedent(
    """
    import sys, time, xmlrpc.client
    url, seconds, me = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    proxy = xmlrpc.client.ServerProxy(url)
    sys.stdin.readline()
    calls, end, cpu = 0, time.perf_counter() + seconds, time.process_time()
    while time.perf_counter() < end:
        answer = proxy.Trade("trader00", 1, f"user{me:02d}{calls % 10}", "liquid", "")
        assert answer is True, answer
        calls += 1
    print(calls, time.process_time() - cpu)
    """
)

BASELINE = textwrap.dedent(
    """
    import sys
    from xmlrpc.server import SimpleXMLRPCServer
    balances = {"trader00": {"liquid": 10**15, "reserve": 0}}
    def Trade(user1, amount, user2, style="liquid", passw=""):
        balances.setdefault(user2, {"liquid": 0, "reserve": 0})
        if amount > balances[user1][style]:
            return "Insufficient " + style + " balance"
        balances[user1][style] -= amount
        balances[user2][style] += amount
        return True
    server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
    server.register_function(Trade)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


@dataclass
class Run:
    calls_per_second: float
    server_cpu_us: float  # CPU seconds of the server process per call, in microseconds
    client_cpu_us: float  # CPU of the client processes per call (their timed loop only), in microseconds


def _process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (None: this process)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _clients(url: str, count: int, server_pid: int | None) -> Run:
    """``count`` client processes calling ``url`` together for a fixed time: calls/s and CPU per call."""
    procs = [
        subprocess.Popen([sys.executable, "-c", CLIENT, url, str(SECONDS_PER_RUN), str(i)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
        for i in range(count)
    ]
    time.sleep(0.5 + 0.1 * count)  # let every interpreter start and import
    server_cpu = _process_cpu(server_pid)
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = [proc.communicate()[0].split() for proc in procs]
    server_cpu = _process_cpu(server_pid) - server_cpu
    answered = sum(int(calls) for calls, _ in reports)
    client_cpu = sum(float(cpu) for _, cpu in reports)
    return Run(answered / SECONDS_PER_RUN, server_cpu / answered * 1e6, client_cpu / answered * 1e6)


def run(runs: int = 3, client_counts: tuple[int, ...] = (1, 8),
        latency: bool = True) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        exchange = ServiceHarness(tmp)
        node, api = exchange.node, exchange.api
        try:
            url = f"http://127.0.0.1:{exchange.service.api_port}/"
            exchange.credit("trader00", 10**13)

            baseline_proc = subprocess.Popen([sys.executable, "-c", BASELINE], stdout=subprocess.PIPE, text=True)
            try:
                baseline_url = f"http://127.0.0.1:{int(baseline_proc.stdout.readline())}/"
                for clients in client_counts:
                    ours_runs, base_runs = [], []
                    commit = exchange.service.loaded_engine.commit
                    batches = commit.batches_written
                    for _ in range(runs):  # interleaved, so that drift on the machine hits both alike
                        ours_runs.append(_clients(url, clients, None))
                        base_runs.append(_clients(baseline_url, clients, baseline_proc.pid))
                    batches = commit.batches_written - batches  # (an int read across threads: a count)
                    per_batch = sum(r.calls_per_second for r in ours_runs) * SECONDS_PER_RUN / max(batches, 1)
                    ours = statistics.median(r.calls_per_second for r in ours_runs)
                    base = statistics.median(r.calls_per_second for r in base_runs)
                    rows.append((f"API Trade, {clients} client(s)", ours, "calls/s, durable (group commit)"))
                    rows.append((f"baseline, {clients} client(s)", base,
                                 f"calls/s, stdlib single-threaded, memory only; ours/baseline {ours / base:.2f}"
                                 + (" (target >= 1.5)" if clients == 8 else "")))
                    if clients == 8:  # where the two cores go (docs/api.md explains the ceiling)
                        for name, measured in (("API", ours_runs), ("baseline", base_runs)):
                            server = statistics.median(r.server_cpu_us for r in measured)
                            client = statistics.median(r.client_cpu_us for r in measured)
                            rows.append((f"{name} CPU/call, 8 clients", server + client,
                                         f"us: server {server:.0f} + clients {client:.0f}"
                                         + (f"; {per_batch:.1f} calls per synced batch" if name == "API" else "")))
            finally:
                baseline_proc.kill()
                baseline_proc.wait()

            if not latency:
                return rows
            # GetBalance latency while the node connects blocks without pause.
            stop = threading.Event()

            def produce() -> None:
                while not stop.is_set():
                    node.generate(1)

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            latencies = []
            try:
                for _ in range(500):
                    start = time.perf_counter()
                    api.GetBalance("trader00", "")
                    latencies.append(time.perf_counter() - start)
            finally:
                stop.set()
                producer.join()
            latencies.sort()
            rows.append(("GetBalance p50 under blocks", latencies[len(latencies) // 2] * 1000, "ms"))
            rows.append(("GetBalance p99 under blocks", latencies[int(len(latencies) * 0.99)] * 1000,
                         "ms (target < 20)"))
        finally:
            exchange.close()
    return rows


def profile(clients: int = 8, top: int = 40) -> None:
    """Where the server's time goes: cProfile on the reactor thread (the only thread serving the API) while
    ``clients`` processes call Trade for one run; prints the functions by own time, in µs per answered call.
    cProfile slows small functions more than large ones: read the ranking, not the absolute figures."""
    import cProfile
    import pstats

    from twisted.internet import reactor, threads

    with tempfile.TemporaryDirectory() as tmp:
        exchange = ServiceHarness(tmp)
        try:
            url = f"http://127.0.0.1:{exchange.service.api_port}/"
            exchange.credit("trader00", 10**13)
            profiler = cProfile.Profile()
            commit = exchange.service.loaded_engine.commit
            batches = commit.batches_written
            threads.blockingCallFromThread(reactor, profiler.enable)
            measured = _clients(url, clients, None)
            threads.blockingCallFromThread(reactor, profiler.disable)
            batches = commit.batches_written - batches
        finally:
            exchange.close()
    calls = measured.calls_per_second * SECONDS_PER_RUN
    stats = pstats.Stats(profiler)
    total = sum(entry[2] for entry in stats.stats.values())  # own time of every function
    print(f"{calls:,.0f} calls profiled ({measured.calls_per_second:,.0f}/s under cProfile, "
          f"{calls / max(batches, 1):.1f} calls per synced batch); "
          f"own time in the reactor thread {total / calls * 1e6:.0f} us per call (wall clock: poll and the "
          "synced write include waiting)")
    print(f"{'us/call':>8} {'ncalls/call':>11}  function")
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    for (path, line, name), (_, ncalls, own, _cumulative, _) in rows:
        print(f"{own / calls * 1e6:8.1f} {ncalls / calls:11.2f}  {name} ({Path(path).name}:{line})")


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench.api_bench [--runs N] [--profile]``: this benchmark alone (``make bench`` runs
    them all), or the profile of the server's reactor thread under 8 clients."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="paired runs per client count (default 3)")
    parser.add_argument("--profile", action="store_true", help="profile the reactor thread under 8 clients")
    parser.add_argument("--only8", action="store_true", help="8 clients only, no GetBalance latency")
    args = parser.parse_args(argv)
    if args.profile:
        profile()
        sys.stdout.flush()
        os._exit(0)
    for name, figure, note in run(args.runs, (8,) if args.only8 else (1, 8), not args.only8):
        print(f"{name:<32} {figure:>14,.0f}  {note}" if figure >= 100 else f"{name:<32} {figure:>14.3f}  {note}")
    # As in ``make bench``: the reactor thread cannot be stopped and restarted, so just exit.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
