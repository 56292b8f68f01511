"""Instructions per event of the whole `sluice run` process, counted by
callgrind: a burst into Sluice under valgrind, every thread counted, from
after a warm-up burst (TLS handshake, streams created) to the last event
delivered. Unlike CPU time on this machine, the count does not drift from
run to run (a few hundred instructions, from how reads split the frames).

Valgrind reports a CPU without SHA extensions, so SHA-256 (signing each
request body) runs the crate's portable code under it and is far dearer
than on the real CPU: the script reports the count without it, and the
SHA-256 share apart.

It reuses the input and the TLS counting endpoint of compare_fluent_bit.py.
The records go in Forward frames of 1,000, or with --message-frames one
Message frame each (as Docker's fluentd driver sends them, and as the side
by side's steady phase does), all sent at once. With --drop-in Sluice
runs as a FireLens drop-in, from a configuration like the one ECS
generates (compare_fluent_bit.DROP_IN_CONFIG). With --task-metadata an
ECS task metadata endpoint on loopback describes the records' task, as on
ECS, so that Sluice adds the task's ECS keys to every record that lacks
them. Extra VAR=value arguments go into Sluice's environment.

Usage (after ../shared/peers/build-peers.sh and a release build with line
tables, so that the functions below are named):
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p sluice
  ~/peers/venv/bin/python benches/callgrind_burst.py target/release/sluice [RECORDS] [--message-frames] [--drop-in] [--task-metadata] [VAR=value ...]
"""

import http.server
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_fluent_bit as common  # noqa: E402

# Inclusive counts reported per event besides the total: each function by
# the source file it is written in and its name.
PARTS = [
    ("output thread", "sidecar/src/stage.rs", "sluice::stage::write_output"),
    ("  classify, render, statistics, batch", "sidecar/src/stage.rs", "sluice::stage::OutputStage::write"),
    ("forward decoding", "firelens/src/session.rs", "sluice_firelens::session::Session::decode"),
    ("SHA-256 (portable code under valgrind)", "src/sha256.rs", "sha2::sha256::compress256"),
]


def inclusive_counts(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if m:
            rows.append((int(m.group(1).replace(",", "")), m.group(2)))
    return rows


def largest(rows, source, name):
    """The inclusive count of a function. With inlining, callgrind splits
    a function by the source file each part of it came from: the part
    from the file the function is written in holds the rest. Which of its
    lines carries the object file's name varies, so both are looked at.
    Without line tables the file is `???` and the function is whole."""
    own = re.compile("(" + re.escape(source) + r"|\?\?\?):" + re.escape(name) + "( |$)")
    return max((v for v, s in rows if own.search(s)), default=0)


class TaskMetadata(http.server.BaseHTTPRequestHandler):
    """ECS task metadata v4's `${uri}/task`, for --task-metadata: the task
    the side by side's records come from (its tag, its container)."""

    TASK = {"Cluster": "bench", "TaskARN": "arn:aws:ecs:us-east-1:123456789012:task/bench/5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e",
            "Family": "bench", "Revision": "1",
            "Containers": [{"Name": "envoy", "DockerId": "5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e-1234567890",
                            "DockerName": "ecs-orders-3-envoy-8ac2e1f0b1a2c3d4e5f6"}]}

    def do_GET(self):
        body = json.dumps(TaskMetadata.TASK).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def task_metadata_uri():
    """Serves TaskMetadata on loopback; the URI ECS would give."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TaskMetadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return "http://127.0.0.1:%d/v4" % server.server_address[1]


def message_frames(records):
    """The steady phase's frames: one Message frame per record."""
    rng = random.Random(11)
    return b"".join(common.message_frame(rng) for _ in range(records))


def main():
    sluice = sys.argv[1]
    args = [a for a in sys.argv[2:] if a not in ("--message-frames", "--drop-in", "--task-metadata")]
    one_per_frame = "--message-frames" in sys.argv[2:]
    records = int(args[0]) if args and "=" not in args[0] else 20000
    extra = dict(arg.split("=", 1) for arg in args if "=" in arg)
    tls, endpoint = common.counting_endpoint("sluice-callgrind-tls-")
    port = common.free_port()
    out = os.path.join(tempfile.mkdtemp(prefix="sluice-callgrind-"), "callgrind.out")
    env = common.sluice_env(tls, port, endpoint, "", extra)
    if "--task-metadata" in sys.argv[2:]:
        env["ECS_CONTAINER_METADATA_URI_V4"] = task_metadata_uri()
    if "--drop-in" in sys.argv[2:]:
        common.use_drop_in(env, os.path.dirname(out), port, endpoint)
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, sluice, "run"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        common.wait_port(port, timeout=180)
        warm_up = 2000
        common.send_counted(port, common.burst_frames(warm_up, 1000, seed=3))
        if not common.wait_events(warm_up, timeout=600):
            raise SystemExit("the warm-up burst was not delivered")
        time.sleep(2)
        subprocess.run(["callgrind_control", "--zero", str(p.pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        common.send_counted(port, message_frames(records) if one_per_frame else common.burst_frames(records, 1000))
        if not common.wait_events(records, timeout=900):
            raise SystemExit("the burst was not delivered")
        time.sleep(2)
        subprocess.run(["callgrind_control", "--dump", str(p.pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        p.terminate()
        p.wait(timeout=120)
    rows = inclusive_counts(out + ".1")
    total = next(v for v, s in rows if "PROGRAM TOTALS" in s)
    sha = largest(rows, "src/sha256.rs", "sha2::sha256::compress256")
    print("records=%d instructions_per_event=%d without_sha256=%d"
          % (records, total / records, (total - sha) / records))
    for label, source, name in PARTS:
        print("  %-40s %7d" % (label, largest(rows, source, name) / records))


if __name__ == "__main__":
    main()
