"""Two Sluice binaries, A and B, burst against burst in alternation:
events per CPU-second of each over the same 300k-record burst as the side
by side, a fresh process per burst, A and B taking turns (A B B A A B ...)
so that this machine's drift from minute to minute falls on both alike.

callgrind_burst.py counts instructions, which do not drift, but it cannot
see caches or a copy across cores; a change meant to help those (smaller
requests, work moved between threads) is judged here, by CPU time, with
the median of each side and the ratio B / A of the medians.

Each burst's line also gives the minor page faults the process took during
it and its peak RSS.

It reuses the input and the TLS counting endpoint of compare_fluent_bit.py.
Extra VAR=value arguments go into both binaries' environment; a:VAR=value
into A's only, b:VAR=value into B's only, so that A and B may be one
binary with two settings (for instance b:SLUICE_LIMITS_MEMORY=24MiB, or
jemalloc's b:_RJEM_MALLOC_CONF=thp:always). With --drop-in both run as a
FireLens drop-in (compare_fluent_bit.DROP_IN_CONFIG).

Usage (after ../shared/peers/build-peers.sh and two release builds):
  ~/peers/venv/bin/python benches/ab_burst.py A_BINARY B_BINARY [PAIRS] [--drop-in] [[a:|b:]VAR=value ...]
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_fluent_bit as common  # noqa: E402

RECORDS = 300_000


def one_burst(binary, tls, endpoint, burst, extra, drop_in):
    """One fresh `sluice run` taking the burst: its events per CPU-second,
    the minor page faults it took, and its peak RSS in MiB."""
    port = common.free_port()
    env = common.sluice_env(tls, port, endpoint, "", extra)
    if drop_in:
        common.use_drop_in(env, common.scratch_dir("sluice-ab-"), port, endpoint)
    p = subprocess.Popen([binary, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        common.wait_port(port)
        time.sleep(1)
        cpu0, faults0 = common.cpu_seconds(p.pid), minor_faults(p.pid)
        common.send_counted(port, burst)
        if not common.wait_events(RECORDS):
            raise SystemExit("%s did not deliver the burst" % binary)
        cpu = common.cpu_seconds(p.pid) - cpu0
        faults = minor_faults(p.pid) - faults0
        peak = common.status_kib(p.pid, "VmHWM") / 1024
    finally:
        p.terminate()
        p.wait(timeout=60)
    return RECORDS / cpu, faults, peak


def minor_faults(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def main():
    a, b = sys.argv[1], sys.argv[2]
    drop_in = "--drop-in" in sys.argv[3:]
    rest = [arg for arg in sys.argv[3:] if arg != "--drop-in"]
    pairs = int(rest[0]) if rest and "=" not in rest[0] else 5
    settings = [arg for arg in rest if "=" in arg]
    shared = dict(arg.split("=", 1) for arg in settings if not arg.startswith(("a:", "b:")))
    sides = {}
    for side, binary in (("A", a), ("B", b)):
        own = dict(arg[2:].split("=", 1) for arg in settings if arg.startswith(side.lower() + ":"))
        sides[side] = (binary, dict(shared, **own))
    tls, endpoint = common.counting_endpoint("sluice-ab-tls-")
    burst = common.burst_frames(RECORDS, 1000)
    rates = {"A": [], "B": []}
    for i in range(pairs):
        # A B, then B A: neither always goes first.
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            binary, extra = sides[side]
            rate, faults, peak = one_burst(binary, tls, endpoint, burst, extra, drop_in)
            rates[side].append(rate)
            print("%s %s %.0f minor_faults=%d peak_rss_mib=%.1f" % (side, binary, rate, faults, peak), flush=True)
    med_a, med_b = statistics.median(rates["A"]), statistics.median(rates["B"])
    print("A median %.0f events per CPU-second (%s)" % (med_a, " ".join("%.0f" % r for r in rates["A"])))
    print("B median %.0f events per CPU-second (%s)" % (med_b, " ".join("%.0f" % r for r in rates["B"])))
    print("B / A = %.3f" % (med_b / med_a))


if __name__ == "__main__":
    main()
