"""One burst into `sluice run`, watched from outside: events per CPU-second,
peak RSS (VmHWM), and the live heap the sidecar's allocator counts
(`sluice_heap_live_bytes`, `sluice_heap_peak_bytes` on /metrics).

It reuses the input and the TLS counting endpoint of compare_fluent_bit.py.
Extra VAR=value arguments go into Sluice's environment, e.g. jemalloc's
options (`_RJEM_MALLOC_CONF=narenas:2`) or `SLUICE_LIMITS_MEMORY=32MiB`.

The burst can also meet the other conditions `limits.memory` must hold
under (issue 14):
  --connections=N  the records split over N connections that send at
                   once, in frames of at most 1,000, each with a tag
                   (a container, a log stream) of its own;
  --message-frames each record in a Message frame of its own, as Docker's
                   fluentd driver sends;
  --slow=SECONDS   CloudWatch answers every PutLogEvents call after
                   SECONDS;
  --failing=SECONDS  CloudWatch answers PutLogEvents with 503
                   ServiceUnavailableException for the burst's first
                   SECONDS, then takes everything.

Usage (after ../shared/peers/build-peers.sh and `cargo build --release -p sluice`):
  ~/peers/venv/bin/python benches/burst_memory.py target/release/sluice 300000 \
      [--connections=N] [--message-frames] [--slow=SECONDS] [--failing=SECONDS] [VAR=value ...]
"""

import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_fluent_bit as common  # noqa: E402


def metrics(port):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=1).read().decode()
    # Only the unlabelled samples: "name value".
    return {name: float(value) for name, value in
            (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("sluice_heap_"))}


def main():
    sluice, records = sys.argv[1], int(sys.argv[2])
    options = dict(arg[2:].partition("=")[::2] for arg in sys.argv[3:] if arg.startswith("--"))
    extra = dict(arg.split("=", 1) for arg in sys.argv[3:] if not arg.startswith("--"))
    connections = int(options.pop("connections", 1))
    common.Counter.delay = float(options.pop("slow", 0))
    failing = float(options.pop("failing", 0))
    message_frames = options.pop("message-frames", None) is not None
    if options:
        raise SystemExit("unknown options: %s" % ", ".join(options))
    tls, endpoint = common.counting_endpoint("sluice-burst-tls-")
    share = records // connections
    # One container per connection, as Docker connects, so that each has
    # a log stream (and a batch) of its own.
    tags = [common.TAG] if connections == 1 else \
        [common.TAG.replace("envoy-", "app%d-" % i, 1) for i in range(connections)]
    bursts = [common.burst_frames(share, min(share, 1000), seed=7 + i, tag=tag, message_frames=message_frames)
              for i, tag in enumerate(tags)]
    records = share * connections
    port, admin = common.free_port(), common.free_port()
    env = common.sluice_env(tls, port, endpoint, "127.0.0.1:%d" % admin, extra)
    p = subprocess.Popen([sluice, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        common.wait_port(port)
        time.sleep(1)
        idle = common.status_kib(p.pid, "VmRSS") / 1024
        peak_live = [0.0]
        done = threading.Event()

        def watch():
            while not done.is_set():
                try:
                    peak_live[0] = max(peak_live[0], metrics(admin).get("sluice_heap_live_bytes", 0) / 2**20)
                except OSError:
                    pass
                time.sleep(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        cpu0 = common.cpu_seconds(p.pid)
        common.Counter.fail_until = time.time() + failing
        common.send_over(port, bursts)
        ok = common.wait_events(records)
        cpu = common.cpu_seconds(p.pid) - cpu0
        done.set()
        watcher.join()
        heap_peak = metrics(admin).get("sluice_heap_peak_bytes", 0) / 2**20
        print("delivered=%s events_per_cpu_s=%.0f peak_rss_mib=%.1f heap_peak_mib=%.1f "
              "heap_live_peak_sampled_mib=%.1f idle_rss_mib=%.1f"
              % (ok, records / cpu if ok and cpu else 0, common.status_kib(p.pid, "VmHWM") / 1024,
                 heap_peak, peak_live[0], idle))
    finally:
        p.terminate()
        p.wait(timeout=60)


if __name__ == "__main__":
    main()
