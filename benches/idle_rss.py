"""Idle RSS of one or more Sluice binaries: each started five times with the
side by side's environment (compare_fluent_bit.py), VmRSS read 2 s after its
forward port answers, as the side by side reads its idle row; and the CPU
time the process had used by then (start-up, in the kernel's 10 ms ticks).

Idle RSS depends on the binary file as well as the code: pages of a file the
page cache holds in large folios (a file just written, for instance by `cp`)
are mapped more around each fault. Compare binaries whose files are of the
same age, or give a fresh copy and an old one of the same file to see it.

Usage (after ../shared/peers/build-peers.sh and a release build):
  ~/peers/venv/bin/python benches/idle_rss.py BINARY [BINARY ...]
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_fluent_bit as common  # noqa: E402

STARTS = 5


def idle_rss_and_start_cpu(binary, tls, endpoint):
    """VmRSS in MiB and CPU time in ms, 2 s after the port answers."""
    port = common.free_port()
    env = common.sluice_env(tls, port, endpoint, "")
    p = subprocess.Popen([binary, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        common.wait_port(port)
        time.sleep(2)
        return common.status_kib(p.pid, "VmRSS") / 1024, common.cpu_seconds(p.pid) * 1000
    finally:
        p.terminate()
        p.wait()


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    tls, endpoint = common.counting_endpoint("sluice-idle-tls-")
    for binary in sys.argv[1:]:
        values = [idle_rss_and_start_cpu(binary, tls, endpoint) for _ in range(STARTS)]
        print("%s idle_rss_mib=%s start_cpu_ms=%s" % (
            binary, " ".join("%.1f" % rss for rss, _ in values), " ".join("%.0f" % cpu for _, cpu in values)))


if __name__ == "__main__":
    main()
