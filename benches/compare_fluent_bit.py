"""Sluice and Fluent Bit side by side, in one run, on the same input and the
same PutLogEvents endpoint.

The endpoint is a counting CloudWatch Logs stand-in on loopback, over TLS
(Fluent Bit's cloudwatch_logs always speaks TLS): every call answers 200,
and PutLogEvents bodies are counted by their events. Fluent Bit runs
forward -> its own `envoy` regex parser (parser filter, Reserve_Data) ->
cloudwatch_logs; Sluice runs with its defaults and the CloudWatch output.
The input is Docker-shaped FireLens records, 70 % Envoy default-format
access lines, 30 % application lines.

Measured per system, from /proc: CPU time (utime + stime) and peak RSS
(VmHWM), for
  burst   300,000 records in Forward frames of 1,000, as fast as taken:
          events per CPU-second, and peak RSS;
  steady  1,000 records/s for 20 s, one Message frame each (as Docker
          sends): CPU as a share of one core;
  idle    RSS after start-up, before any input;
  bytes   in the steady phase, the bytes CloudWatch bills per event
          delivered (each message's UTF-8 bytes plus 26).

With --drop-in both run from the configuration ECS generates for a
FireLens log router (DROP_IN_CONFIG): Fluent Bit as it is, with no
parser, as aws-for-fluent-bit runs it; Sluice as its drop-in. With
--parse-json both also run the filter of aws-for-fluent-bit's
/fluent-bit/configs/parse-json.conf (Sluice's copy in image/), as a task
definition that names it in config-file-value; Fluent Bit then needs the
`json` parser of its conf/parsers.conf (--parsers).

Usage (after ../shared/peers/build-peers.sh and `cargo build --release -p sluice`):
  ~/peers/venv/bin/python benches/compare_fluent_bit.py \\
      --sluice target/release/sluice --fluent-bit ~/peers/fluent-bit-src/build/bin/fluent-bit \\
      --parsers ~/peers/bench/parsers.conf [--runs 2] [--drop-in]
  ... --drop-in --parse-json --parsers ~/peers/fluent-bit-src/conf/parsers.conf
"""

import argparse
import atexit
import http.server
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import msgpack

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Counter(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    events = 0
    lock = threading.Lock()
    # While set (the steady phase, where decoding every body costs this
    # endpoint little), the events' billed bytes are summed as CloudWatch
    # counts them: each message's UTF-8 bytes plus 26.
    measure_bytes = False
    billed_events = 0
    billed_bytes = 0
    # A slow or failing CloudWatch (burst_memory.py): every PutLogEvents
    # call is answered after `delay` seconds, and until `fail_until` (a
    # time.time()) with 503 ServiceUnavailableException, its events not
    # counted.
    delay = 0.0
    fail_until = 0.0

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        target = self.headers.get("X-Amz-Target", "")
        if target.endswith("PutLogEvents") and Counter.delay:
            time.sleep(Counter.delay)
        if target.endswith("PutLogEvents") and time.time() < Counter.fail_until:
            self.answer(503, b'{"__type":"ServiceUnavailableException","message":"bench: failing"}')
            return
        if target.endswith("PutLogEvents"):
            n = body.count(b'"timestamp":')
            billed = 0
            if Counter.measure_bytes:
                billed = sum(len(e["message"].encode()) + 26 for e in json.loads(body)["logEvents"])
            with Counter.lock:
                Counter.events += n
                if Counter.measure_bytes:
                    Counter.billed_events += n
                    Counter.billed_bytes += billed
            answer = b'{"nextSequenceToken":"1"}'
        else:
            answer = b"{}"
        if os.environ.get("BENCH_DUMP") and target.endswith("PutLogEvents"):
            with open(os.environ["BENCH_DUMP"], "ab") as f:
                f.write(body[:3000] + b"\n")
        self.answer(200, answer)

    def answer(self, status, answer):
        self.send_response(status)
        # Fluent Bit refuses an answer without it.
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def make_certificates(workdir):
    """A CA and a server certificate for 127.0.0.1 signed by it (rustls
    refuses a self-signed CA certificate as the server's own)."""
    def run(*cmd):
        subprocess.run(cmd, check=True, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-keyout", "ca.key",
        "-out", "ca.pem", "-subj", "/CN=bench CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    with open(os.path.join(workdir, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "30", "-out", "server.pem", "-extfile", "san.ext")
    return os.path.join(workdir, "ca.pem")


def start_endpoint(tls_dir):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(tls_dir, "server.pem"), os.path.join(tls_dir, "server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def scratch_dir(prefix):
    """A new directory in the temporary directory, removed when the script
    exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def counting_endpoint(prefix):
    """Certificates in a new directory and the counting endpoint serving
    with them: (the directory, for the client's CA; the endpoint's port)."""
    tls = scratch_dir(prefix)
    make_certificates(tls)
    return tls, start_endpoint(tls)


def send_counted(port, frames):
    """Zeroes the endpoint's count of events, then sends `frames` to
    `port` on one connection."""
    send_over(port, [frames])


def send_over(port, bursts):
    """Zeroes the endpoint's count of events, then sends each of `bursts`
    to `port` on a connection of its own, all at once."""
    with Counter.lock:
        Counter.events = 0
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in bursts]

    def send(s, frames):
        s.sendall(frames)
        s.close()

    senders = [threading.Thread(target=send, args=pair) for pair in zip(sockets, bursts)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- input
METHODS = ["GET", "GET", "POST", "PUT"]
PATHS = ["/api/v1/users/%d", "/api/v1/users/%d/orders?page=2&token=eyJhbGciOiJIUzI1NiJ9",
         "/api/v1/catalog/items", "/healthz", "/api/v1/search?q=red+shoes&size=%d"]
AGENTS = ["Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
          "curl/8.5.0", "okhttp/4.12.0", "grpc-go/1.60.1"]
APP = ["2025-11-04 06:49:07,518 INFO  [orders.service] Order 81234 placed by customer 5521 in 12 ms",
       "[2025-11-04 06:49:08.002][15][warning][config] StreamAggregatedResources gRPC config stream to xds closed: 13",
       '{"level":"info","ts":"2025-11-04T06:49:07.518Z","logger":"orders","msg":"order placed","order_id":81234}']


def line(rng):
    if rng.random() >= 0.7:
        return rng.choice(APP)
    path = rng.choice(PATHS)
    if "%d" in path:
        path = path % rng.randrange(100000)
    # Start times of now: within one PutLogEvents batch's 24 h span.
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % rng.randrange(1000)
    return ('[%s] "%s %s HTTP/1.1" %d - %d %d %d %d "10.0.%d.%d" "%s" "%08x-%04x-4%03x-a%03x-%012x" "orders.internal:8080" "10.0.2.%d:8080"'
            % (stamp, rng.choice(METHODS), path,
               rng.choice([200, 200, 200, 201, 204, 404, 503]), rng.randrange(2000), rng.randrange(200000),
               rng.randrange(900), rng.randrange(800), rng.randrange(256), rng.randrange(256), rng.choice(AGENTS),
               rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12), rng.getrandbits(12),
               rng.getrandbits(48), rng.randrange(256)))


def record(log):
    return {"container_id": "5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e-1234567890",
            "container_name": "/ecs-orders-3-envoy-8ac2e1f0b1a2c3d4e5f6", "source": "stdout", "log": log}


TAG = "envoy-firelens-5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e"


def event_time(t):
    secs = int(t)
    return msgpack.ExtType(0, secs.to_bytes(4, "big") + int((t - secs) * 1e9).to_bytes(4, "big"))


def burst_frames(records, per_frame, seed=7, tag=TAG, message_frames=False):
    """Forward frames of `per_frame` records, or with `message_frames` one
    Message frame per record (as Docker's fluentd driver sends)."""
    rng = random.Random(seed)
    now = time.time()
    if message_frames:
        return b"".join(message_frame(rng, tag, now) for _ in range(records))
    out = []
    for f in range(records // per_frame):
        entries = [[event_time(now), record(line(rng))] for _ in range(per_frame)]
        out.append(msgpack.packb([tag, entries], use_bin_type=True))
    return b"".join(out)


# ---------------------------------------------------------------- systems
def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith(key + ":"):
                return int(l.split()[1])
    return 0


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on %d" % port)


def start_fluent_bit(args, port, endpoint_port, workdir):
    conf = os.path.join(workdir, "fluent-bit.conf")
    with open(conf, "w") as f:
        if args.drop_in:
            f.write(FLUENT_BIT_SERVICE % args.parsers + drop_in_config(port, endpoint_port, args.parse_json)
                    + "    tls.verify off\n")
        else:
            f.write(FLUENT_BIT_SERVICE % args.parsers + """
[INPUT]
    Name forward
    Listen 127.0.0.1
    Port %d

[FILTER]
    Name parser
    Match *
    Key_Name log
    Parser envoy
    Reserve_Data On

[OUTPUT]
    Name cloudwatch_logs
    Match *
    region us-east-1
    log_group_name bench
    log_stream_prefix fb-
    auto_create_group true
    endpoint 127.0.0.1
    port %d
    tls.verify off
""" % (port, endpoint_port))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    p = subprocess.Popen([args.fluent_bit, "-c", conf], env=env, stdout=open(os.path.join(workdir, "fb.log"), "w"), stderr=subprocess.STDOUT)
    wait_port(port)
    return p


FLUENT_BIT_SERVICE = """[SERVICE]
    Flush 1
    Log_Level warn
    Parsers_File %s
"""

# --drop-in: the kind of Fluent Bit configuration ECS generates for
# FireLens (shared/firelens.md), with a record_modifier filter adding the
# ECS keys and the input's tag going to a cloudwatch_logs output. Fluent
# Bit runs it as it is (no parser: ECS generates none); Sluice reads it as
# a FireLens drop-in.
DROP_IN_CONFIG = """
[INPUT]
    Name forward
    Listen 127.0.0.1
    Port %(port)d

[FILTER]
    Name record_modifier
    Match *
    Record ecs_cluster bench
    Record ecs_task_arn arn:aws:ecs:us-east-1:123456789012:task/bench/5a0a7b1c6f7e4d2b9c3e8f1a2b3c4d5e
    Record ecs_task_definition bench:1

[OUTPUT]
    Name cloudwatch_logs
    Match envoy-firelens*
    region us-east-1
    log_group_name /ecs/bench
    log_stream_prefix envoy/
    auto_create_group true
    endpoint 127.0.0.1
    port %(endpoint)d
"""


def drop_in_config(port, endpoint_port, parse_json=False):
    """DROP_IN_CONFIG for these ports, with parse-json.conf's filter before
    the outputs when `parse_json`."""
    text = DROP_IN_CONFIG % {"port": port, "endpoint": endpoint_port}
    if parse_json:
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "..", "image", "fluent-bit", "configs", "parse-json.conf")) as f:
            conf = f.read()
        # Its [SERVICE] only says what FLUENT_BIT_SERVICE says.
        text = text.replace("\n[OUTPUT]", "\n" + conf[conf.index("[FILTER]"):] + "\n[OUTPUT]", 1)
    return text


def use_drop_in(env, directory, port, endpoint_port, parse_json=False):
    """Writes drop_in_config for these ports into `directory` and points
    Sluice's environment `env` at it: Sluice then runs as a drop-in."""
    conf = os.path.join(directory, "sluice-fluent-bit.conf")
    with open(conf, "w") as f:
        f.write(drop_in_config(port, endpoint_port, parse_json))
    env["SLUICE_FIRELENS_CONFIG"] = conf


def sluice_env(tls_dir, port, endpoint_port, admin_listen="", extra=None):
    """Sluice's environment for the benches: forward input on `port`,
    CloudWatch output to the counting endpoint, plus `extra`."""
    return dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                SSL_CERT_FILE=os.path.join(tls_dir, "ca.pem"),
                SLUICE_FORWARD_LISTEN="127.0.0.1:%d" % port, SLUICE_ADMIN_LISTEN=admin_listen,
                SLUICE_FIRELENS_CONFIG="", SLUICE_OUTPUT_TYPE="cloudwatch",
                SLUICE_CLOUDWATCH_REGION="us-east-1",
                SLUICE_CLOUDWATCH_ENDPOINT="https://127.0.0.1:%d" % endpoint_port, **(extra or {}))


def message_frame(rng, tag=TAG, now=None):
    """One record in a Message frame of its own, stamped `now` (else the
    current time), as Docker's fluentd driver sends each line."""
    stamp = event_time(time.time() if now is None else now)
    return msgpack.packb([tag, stamp, record(line(rng)), {}], use_bin_type=True)


def send_steady(sock, rate, seconds):
    """`rate` records a second for `seconds`, one Message frame each (as
    Docker's fluentd driver sends), then 2 s for the last batches to go
    out. Returns when it started."""
    rng = random.Random(11)
    t0 = time.time()
    for i in range(rate * seconds):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        sock.sendall(message_frame(rng))
    # Until the last ones are sent on (flush intervals).
    time.sleep(2)
    return t0


def start_sluice(args, port, endpoint_port, workdir):
    env = sluice_env(args.tls, port, endpoint_port)
    if args.drop_in:
        use_drop_in(env, workdir, port, endpoint_port, args.parse_json)
    p = subprocess.Popen([args.sluice, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def wait_events(target, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with Counter.lock:
            if Counter.events >= target:
                return True
        time.sleep(0.01)
    return False


def measure(name, start, args, endpoint_port, burst):
    workdir = scratch_dir("sluice-vs-fb-")
    result = {}
    # Burst.
    port = free_port()
    p = start(args, port, endpoint_port, workdir)
    time.sleep(2)
    result["idle_rss_mib"] = status_kib(p.pid, "VmRSS") / 1024
    cpu0 = cpu_seconds(p.pid)
    t0 = time.time()
    send_counted(port, burst)
    ok = wait_events(args.records)
    cpu = cpu_seconds(p.pid) - cpu0
    result["burst_wall_s"] = time.time() - t0
    result["burst_events_per_cpu_s"] = args.records / cpu if ok and cpu > 0 else 0.0
    result["burst_peak_rss_mib"] = status_kib(p.pid, "VmHWM") / 1024
    p.terminate()
    p.wait(timeout=60)
    # Steady.
    port = free_port()
    p = start(args, port, endpoint_port, workdir)
    time.sleep(2)
    s = socket.create_connection(("127.0.0.1", port))
    with Counter.lock:
        Counter.measure_bytes, Counter.billed_events, Counter.billed_bytes = True, 0, 0
    cpu0 = cpu_seconds(p.pid)
    t0 = send_steady(s, args.rate, args.seconds)
    cpu = cpu_seconds(p.pid) - cpu0
    wall = time.time() - t0
    s.close()
    with Counter.lock:
        Counter.measure_bytes = False
        # Statistics events (Sluice's) are counted with the rest.
        result["billed_bytes_per_event"] = Counter.billed_bytes / max(1, Counter.billed_events)
    result["steady_cpu_percent"] = 100.0 * cpu / wall
    p.terminate()
    p.wait(timeout=60)
    print("%-10s %s" % (name, " ".join("%s=%.1f" % kv for kv in sorted(result.items()))), flush=True)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--fluent-bit", default=os.path.expanduser("~/peers/fluent-bit-src/build/bin/fluent-bit"))
    ap.add_argument("--parsers", default=os.path.expanduser("~/peers/bench/parsers.conf"))
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--per-frame", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--drop-in", action="store_true",
                    help="both run from the configuration ECS generates for FireLens (DROP_IN_CONFIG)")
    ap.add_argument("--parse-json", action="store_true",
                    help="with --drop-in: and parse-json.conf's filter (needs the json parser in --parsers)")
    args = ap.parse_args()
    if args.parse_json and not args.drop_in:
        ap.error("--parse-json needs --drop-in")
    args.tls, endpoint_port = counting_endpoint("sluice-vs-fb-tls-")
    burst = burst_frames(args.records, args.per_frame)
    rows = {"fluent-bit": [], "sluice": []}
    for _ in range(args.runs):
        rows["fluent-bit"].append(measure("fluent-bit", start_fluent_bit, args, endpoint_port, burst))
        rows["sluice"].append(measure("sluice", start_sluice, args, endpoint_port, burst))
    print()
    print("| | Fluent Bit | Sluice | Sluice / Fluent Bit |")
    print("| --- | ---: | ---: | ---: |")
    for key, label in [("burst_events_per_cpu_s", "events per CPU-second, %d records in frames of %d" % (args.records, args.per_frame)),
                       ("burst_peak_rss_mib", "peak RSS in that burst, MiB"),
                       ("steady_cpu_percent", "CPU, %% of a core, %d records/s for %d s, one Message frame each" % (args.rate, args.seconds)),
                       ("idle_rss_mib", "idle RSS, MiB"),
                       ("billed_bytes_per_event", "CloudWatch bytes per event (UTF-8 + 26), in the steady phase")]:
        fb = [r[key] for r in rows["fluent-bit"]]
        sl = [r[key] for r in rows["sluice"]]
        fmt = lambda xs: "–".join("%.0f" % x if x >= 100 else "%.1f" % x for x in sorted(set(xs)))
        ratio = (sum(sl) / len(sl)) / (sum(fb) / len(fb)) if sum(fb) else float("nan")
        print("| %s | %s | %s | %.2fx |" % (label, fmt(fb), fmt(sl), ratio))


if __name__ == "__main__":
    sys.exit(main())
