"""Steady load into `sluice run`, watched from outside: CPU (user and
system) as a % of a core, and context switches per second, while a client
sends N records a second for S seconds, one Message frame each (as
Docker's fluentd driver sends), plus 2 s for the last batches to go out.

The same steady phase as compare_fluent_bit.py, against Sluice alone; it
reuses that script's input and TLS counting endpoint. Extra VAR=value
arguments go into Sluice's environment.

Usage (after ../shared/peers/build-peers.sh and `cargo build --release -p sluice`):
  ~/peers/venv/bin/python benches/steady_cpu.py target/release/sluice [RATE [SECONDS]] [VAR=value ...]
"""

import os
import socket
import subprocess
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_fluent_bit as common  # noqa: E402


def cpu_times(pid):
    """User and system CPU seconds of the process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def context_switches(pid):
    total = 0
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, task)) as f:
            for line in f:
                # voluntary_ctxt_switches and nonvoluntary_ctxt_switches
                if line.split(":")[0].endswith("ctxt_switches"):
                    total += int(line.split()[1])
    return total


def main():
    args = [a for a in sys.argv[1:] if "=" not in a]
    extra = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    sluice = args[0]
    rate = int(args[1]) if len(args) > 1 else 1000
    seconds = int(args[2]) if len(args) > 2 else 20
    tls, endpoint = common.counting_endpoint("sluice-steady-tls-")
    port = common.free_port()
    env = common.sluice_env(tls, port, endpoint, extra=extra)
    p = subprocess.Popen([sluice, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        common.wait_port(port)
        time.sleep(2)
        s = socket.create_connection(("127.0.0.1", port))
        user0, sys0 = cpu_times(p.pid)
        switches0 = context_switches(p.pid)
        t0 = common.send_steady(s, rate, seconds)
        user1, sys1 = cpu_times(p.pid)
        switches1 = context_switches(p.pid)
        wall = time.time() - t0
        s.close()
        print("cpu_percent=%.2f user_percent=%.2f system_percent=%.2f context_switches_per_s=%.0f"
              % (100 * (user1 - user0 + sys1 - sys0) / wall, 100 * (user1 - user0) / wall,
                 100 * (sys1 - sys0) / wall, (switches1 - switches0) / wall))
    finally:
        p.terminate()
        p.wait(timeout=60)


if __name__ == "__main__":
    main()
