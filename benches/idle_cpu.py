"""What an idle sidecar costs, Sluice and Fluent Bit side by side: each
started with the side by side's configuration (compare_fluent_bit.py,
default mode or --drop-in), one client connected that sent one record and
stays connected (as the Docker driver of a quiet task does), then over
SECONDS (default 20): how often the process's threads woke (their context
switches, from /proc/PID/task/*/status) and the CPU they used (from
schedstat, in ns, finer than /proc's 10 ms ticks).

Most tasks are idle most of the time, so this is a cost every task pays.

Usage (after ../shared/peers/build-peers.sh and a release build):
  ~/peers/venv/bin/python benches/idle_cpu.py [--sluice BINARY] [--fluent-bit BINARY] [--seconds N] [--runs N] [--drop-in]
"""

import argparse
import glob
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_fluent_bit as common  # noqa: E402

# After the record was sent: its batch goes out within a flush interval.
SETTLE_S = 3


def wakeups_and_cpu_ns(pid):
    """Context switches and CPU ns, summed over the process's threads."""
    switches = cpu_ns = 0
    for task in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(task + "/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
            with open(task + "/schedstat") as f:
                cpu_ns += int(f.read().split()[0])
        except FileNotFoundError:
            # A thread that ended meanwhile.
            pass
    return switches, cpu_ns


def measure(start, args, endpoint_port):
    workdir = common.scratch_dir("sluice-idle-")
    port = common.free_port()
    p = start(args, port, endpoint_port, workdir)
    try:
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(common.message_frame(random.Random(3)))
        time.sleep(SETTLE_S)
        switches0, cpu0 = wakeups_and_cpu_ns(p.pid)
        time.sleep(args.seconds)
        switches1, cpu1 = wakeups_and_cpu_ns(p.pid)
        client.close()
        return (switches1 - switches0) / args.seconds, (cpu1 - cpu0) / 1e6
    finally:
        p.terminate()
        p.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--fluent-bit", default=os.path.expanduser("~/peers/fluent-bit-src/build/bin/fluent-bit"))
    ap.add_argument("--parsers", default=os.path.expanduser("~/peers/bench/parsers.conf"))
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--drop-in", action="store_true")
    args = ap.parse_args()
    args.tls, endpoint_port = common.counting_endpoint("sluice-idle-tls-")
    for _ in range(args.runs):
        for name, start in [("fluent-bit", common.start_fluent_bit), ("sluice", common.start_sluice)]:
            wakeups, cpu_ms = measure(start, args, endpoint_port)
            print("%-10s wakeups_per_s=%.1f cpu_ms_in_%ds=%.2f" % (name, wakeups, args.seconds, cpu_ms), flush=True)


if __name__ == "__main__":
    sys.exit(main())
