"""Real Fluent Forward clients for Sluice's end-to-end tests.

Usage: forward_clients.py SCENARIO ADDRESS
ADDRESS is host:port or unix:/path. Prints one JSON line per result (acks
received, errors) so the Rust test can assert them exactly.
"""

import gzip
import json
import socket
import sys
import time

import msgpack
from fluent import asyncsender, sender

T = 1700000000
ACCESS = ('[2016-04-15T20:17:00.310Z] "POST /api/v1/locations?token=s3cret HTTP/2" 204 - 154 0 226 100 '
          '"10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80"')


def connect(address):
    if address.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(address[5:])
    else:
        host, port = address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    s.settimeout(20)
    return s


def event_time(secs, nanos):
    return msgpack.ExtType(0, secs.to_bytes(4, "big") + nanos.to_bytes(4, "big"))


def map32(d):
    """An option map with a non-minimal map32 header, as Fluent Bit writes."""
    body = b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in d.items())
    return b"\xdf" + len(d).to_bytes(4, "big") + body


def frame_with_option(items, option):
    """A frame array whose last element is a map32 option map."""
    head = b"\xdd" + (len(items) + 1).to_bytes(4, "big")
    return head + b"".join(msgpack.packb(i, use_bin_type=True) for i in items) + map32(option)


def packed_as_str(tag, payload, option):
    """PackedForward whose entries travel in a str32 (not bin), built by hand:
    the payload is not UTF-8, so it cannot go through a Python str."""
    return b"\x93" + msgpack.packb(tag) + b"\xdb" + len(payload).to_bytes(4, "big") + payload + map32(option)


def read_ack(s, raw=False):
    unpacker = msgpack.Unpacker(raw=raw)
    while True:
        data = s.recv(4096)
        if not data:
            return None
        unpacker.feed(data)
        for obj in unpacker:
            return obj


def report(**kw):
    print(json.dumps(kw, sort_keys=True), flush=True)


def every_mode(address):
    record = lambda log: {"log": log, "source": "stdout", "container_name": "/app"}
    frames = [
        ("message_int", msgpack.packb(["m", T, record("message int")]), None),
        ("message_event_time_ack", frame_with_option(["m", event_time(T, 7), record("message eventtime")], {"chunk": "c1"}), "c1"),
        ("forward_v1", msgpack.packb(["f", [[T, record("forward 1")], [event_time(T, 1), record("forward 2")]]]), None),
        ("forward_v2_ack", frame_with_option(["f", [[[event_time(T, 2), {}], record("forward v2")]]], {"chunk": "c2", "size": 1}), "c2"),
        ("packed_bin", msgpack.packb(["p", b"".join(msgpack.packb([T, record("packed %d" % i)]) for i in range(2))], use_bin_type=True), None),
        ("packed_str_ack", packed_as_str("p", msgpack.packb([T, record("packed str")]), {"chunk": "c3"}), "c3"),
        ("gzip_ack", frame_with_option(["g", gzip.compress(b"".join(msgpack.packb([event_time(T, 3), record("gzip %d" % i)]) for i in range(3)))], {"chunk": "c4", "compressed": "gzip"}), "c4"),
        ("metrics_signal", frame_with_option(["x", [[T, {"metric": 1}]]], {"chunk": "c5", "fluent_signal": 1}), "c5"),
        ("access_line", msgpack.packb(["a", T, record(ACCESS)]), None),
    ]
    s = connect(address)
    for name, data, chunk in frames:
        s.sendall(data)
        if chunk:
            report(frame=name, ack=read_ack(s))
    s.sendall(msgpack.packb(None))  # heartbeat
    s.close()


def fluent_logger(address):
    host, port = address.rsplit(":", 1)
    s = sender.FluentSender("sync", host=host, port=int(port))
    report(client="sender", ok=s.emit_with_time("app", T, {"log": "from sender", "source": "stdout"}))
    s.close()
    a = asyncsender.FluentSender("async", host=host, port=int(port), nanosecond_precision=True)
    a.emit_with_time("app", T + 0.5, {"message": "from asyncsender"})
    a.close()
    report(client="asyncsender", ok=True)


def bad_then_good(address):
    bad = {
        "invalid_msgpack": b"\xc1\xc1\xc1",
        "not_an_array": msgpack.packb("hello"),
        "bad_gzip": frame_with_option(["t", b"not gzip"], {"compressed": "gzip"}),
        "huge_declared": b"\x92\xa1t\xc6\x7f\xff\xff\xff",
        "truncated": msgpack.packb(["t", T, {"log": "never finished"}])[:-4],
    }
    for name, data in bad.items():
        s = connect(address)
        s.sendall(data)
        if name == "truncated":
            s.close()  # disconnect mid-frame
            report(bad=name, closed_by_server=False)
            continue
        s.settimeout(10)
        try:
            closed = s.recv(10) == b""
        except ConnectionResetError:
            closed = True
        report(bad=name, closed_by_server=closed)
        s.close()
    s = connect(address)
    s.sendall(frame_with_option(["good", [[T, {"log": "good %d" % i}] for i in range(100)]], {"chunk": "g1"}))
    report(good="g1", ack=read_ack(s))
    s.close()


def handshake(s, key, hostname="client-host", user="", password=""):
    """The client side of the shared_key handshake (with a user's name and
    password when the HELO's `auth` asks for one); returns the PONG."""
    import hashlib
    # Raw: the `auth` salt is random bytes in a msgpack string, as Fluent
    # Bit sends it.
    helo = read_ack(s, raw=True)
    helo = [helo[0].decode(), {k.decode(): v for k, v in helo[1].items()}]
    nonce = helo[1]["nonce"]
    salt = b"0123456789abcdef"
    digest = hashlib.sha512(salt + hostname.encode() + nonce + key.encode()).hexdigest()
    auth = helo[1].get("auth", b"")
    password_digest = hashlib.sha512(auth + user.encode() + password.encode()).hexdigest() if auth else ""
    s.sendall(msgpack.packb(["PING", hostname, salt, digest, user if auth else "", password_digest],
                            use_bin_type=False))
    pong = read_ack(s)
    expected = hashlib.sha512(salt + pong[3].encode() + nonce + key.encode()).hexdigest() if pong[1] else ""
    return helo, pong, expected


def shared_key(address, key):
    for attempt, try_key in (("wrong", key + "-wrong"), ("right", key)):
        s = connect(address)
        helo, pong, expected = handshake(s, try_key)
        report(attempt=attempt, helo=helo[0], keepalive=helo[1]["keepalive"], pong_ok=pong[1],
               reason=pong[2], server_proves_key=(pong[4] == expected) if pong[1] else None)
        if pong[1]:
            s.sendall(frame_with_option(["secure", [[T, {"log": "after handshake"}]]], {"chunk": "s1"}))
            report(attempt=attempt, ack=read_ack(s))
        else:
            s.settimeout(10)
            report(attempt=attempt, closed_by_server=s.recv(10) == b"")
        s.close()


def users(address, key, user, password):
    """The handshake with a user's name and password: a wrong password, then
    the right one."""
    for attempt, try_password in (("wrong", password + "-wrong"), ("right", password)):
        s = connect(address)
        helo, pong, _ = handshake(s, key, user=user, password=try_password)
        auth = helo[1]["auth"]
        report(attempt=attempt, auth_salt_bytes=len(auth), pong_ok=pong[1], reason=pong[2])
        if pong[1]:
            s.sendall(frame_with_option(["secure", [[T, {"log": "after login"}]]], {"chunk": "u1"}))
            report(attempt=attempt, ack=read_ack(s))
        s.close()


def docker_partials(address):
    """A 40,000-byte line split at 16 KiB the way Docker's fluentd driver
    does (Message mode, every value a string, EventTime), with acks."""
    line = "".join(chr(ord("a") + i % 26) for i in range(40000))
    parts = [line[i:i + 16384] for i in range(0, len(line), 16384)]
    s = connect(address)
    for n, text in enumerate(parts, start=1):
        record = {"container_id": "abc", "container_name": "/ecs-app-1", "source": "stdout", "log": text,
                  "partial_message": "true", "partial_id": "p-1", "partial_ordinal": str(n),
                  "partial_last": "true" if n == len(parts) else "false"}
        s.sendall(frame_with_option(["app-firelens-t1", event_time(T, n), record], {"chunk": "d%d" % n}))
        report(part=n, ack=read_ack(s))
    s.sendall(msgpack.packb(["app-firelens-t1", event_time(T, 9), {"log": "short line", "source": "stderr"}]))
    s.close()


def bad_alongside_good(address):
    """Every class of bad input, each on its own connection, while a good
    client on another connection sends 1,000 events with acks."""
    import threading
    acks = []

    def good():
        s = connect(address)
        for f in range(20):
            s.sendall(frame_with_option(["good", [[T, {"log": "good %d" % (f * 50 + i)}] for i in range(50)]],
                                        {"chunk": "g%d" % f}))
            acks.append(read_ack(s)["ack"])
        s.close()

    def closed(s):
        s.settimeout(20)
        try:
            return s.recv(10) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    thread = threading.Thread(target=good)
    thread.start()
    results = {}
    idle = connect(address)  # sends nothing: the idle timeout closes it
    slow = connect(address)
    slow.sendall(msgpack.packb(["t", T, {"log": "never finished"}])[:5])  # stalls mid-frame
    for name, data in {
        "invalid_msgpack": b"\xc1",
        "not_an_array": msgpack.packb({"a": 1}),
        "bad_gzip": frame_with_option(["t", b"not gzip"], {"compressed": "gzip"}),
        "gzip_bomb": frame_with_option(["t", gzip.compress(b"\x00" * (80 << 20))], {"compressed": "gzip"}),
        "huge_declared": b"\x92\xa1t\xc6\x7f\xff\xff\xff",
        # A record's map claiming 4 million empty pairs: 8 MB on the wire,
        # 224 MB of fields once decoded, more than limits.memory.
        "field_bomb": b"\x93\xa1t\x01\xdf" + (4 << 20).to_bytes(4, "big") + b"\xa0\xc0" * (4 << 20),
        "wrong_types": msgpack.packb(["t", "not a time", 5]),
    }.items():
        s = connect(address)
        s.sendall(data)
        results[name] = closed(s)
        s.close()
    results["idle"] = closed(idle)
    results["slow"] = closed(slow)
    thread.join()
    report(bad=results, good_acks=len(acks), acks_in_order=acks == ["g%d" % f for f in range(20)])


def containers(address):
    """The same access line from an Envoy container and an app container, and
    a line of a custom format."""
    line = ACCESS.replace("?token=s3cret", "?page=2&token=s3cret")
    s = connect(address)
    for name in ("/envoy", "/app"):
        s.sendall(msgpack.packb(["t", T, {"log": line, "container_name": name}]))
    s.sendall(msgpack.packb(["t", T, {"log": "GET /orders/7?token=t 200 orders-v2", "container_name": "/envoy"}]))
    s.sendall(frame_with_option(["t", [[T, {"log": "done"}]]], {"chunk": "end"}))
    report(ack=read_ack(s))
    s.close()


def access_line(i, now_ms):
    """An Envoy default-format line for request `i`, started at `now_ms`."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms // 1000)) + ".%03dZ" % (now_ms % 1000)
    status = (200, 503, 404)[i % 3]
    return ('[%s] "GET /orders/id-%d?token=s3cret&page=2 HTTP/1.1" %d - 0 %d 12 10 '
            '"10.0.0.1" "curl/8" "req-%d" "orders" "10.0.2.1:80"' % (stamp, i, status, 100 + i % 7, i))


def bulk_records(first, count):
    """The records of `bulk`: ids FIRST.. alternately from envoy and app."""
    meta = {"ecs_cluster": "arn:aws:ecs:us-east-1:1:cluster/prod",
            "ecs_task_arn": "arn:aws:ecs:us-east-1:1:task/prod/0123abcd", "source": "stdout"}
    entries = []
    for i in range(first, first + count):
        now = time.time()
        if i % 2 == 0:
            record = dict(meta, container_name="/envoy", log=access_line(i, int(now * 1000)))
        else:
            record = dict(meta, container_name="/app",
                          log="app line id-%d GET /login?password=hunter2 done" % i)
        entries.append([event_time(int(now), int(now % 1 * 1e9)), record])
    return entries


def bulk_until_closed(address, count, per_frame):
    """Like bulk, but stops without failing when the sidecar goes away (a
    kill, a stop) and prints how many events were acked: ids 0..acked."""
    count, per_frame = int(count), int(per_frame)
    acked = 0
    try:
        s = connect(address)
        for start in range(0, count, per_frame):
            chunk = "c%d" % start
            s.sendall(frame_with_option(["app.logs", bulk_records(start, min(per_frame, count - start))],
                                        {"chunk": chunk}))
            if read_ack(s) != {"ack": chunk}:
                break
            acked = min(start + per_frame, count)
    except OSError:
        pass
    report(acked=acked)


def rude_clients(address):
    """Next to a good client (1,000 acked events, ids 0..999): one client
    sends 30 acked frames (rude-0..299), then half a frame, then resets the
    connection; another sends 100 frames (deaf-0..1999) asking for acks it
    never reads, ends its side and waits. Prints the acks each got."""
    import struct
    import threading
    acks = []

    def good():
        s = connect(address)
        for start in range(0, 1000, 100):
            s.sendall(frame_with_option(["good", bulk_records(start, 100)], {"chunk": "g%d" % start}))
            acks.append(read_ack(s)["ack"])
        s.close()

    def entries(prefix, first, n):
        return [[int(time.time()), {"log": "%s-%d" % (prefix, i), "container_name": "/app"}]
                for i in range(first, first + n)]

    thread = threading.Thread(target=good)
    thread.start()
    rude = connect(address)
    rude_acks = 0
    for f in range(30):
        rude.sendall(frame_with_option(["rude", entries("rude", f * 10, 10)], {"chunk": "r%d" % f}))
        rude_acks += read_ack(rude) == {"ack": "r%d" % f}
    half = frame_with_option(["rude", entries("rude-never", 0, 10)], {"chunk": "never"})
    rude.sendall(half[: len(half) // 2])
    # SO_LINGER 0: close with a reset, as a crashed client does.
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rude.close()
    deaf = connect(address)
    for f in range(100):
        deaf.sendall(frame_with_option(["deaf", entries("deaf", f * 20, 20)], {"chunk": "d%d" % f}))
    # Done sending, never reading: the sidecar sees the end of input and
    # keeps every whole frame. (Closing a socket with unread acks resets it,
    # which would throw away frames the sidecar has not read yet: wait.)
    deaf.shutdown(socket.SHUT_WR)
    thread.join()
    time.sleep(5)
    deaf.close()
    report(good_acks=len(acks), rude_acks=rude_acks)


SECRETS = ("s3cret", "hunter2", "AKIAIOSFODNN7EXAMPLE", "tok_9f8e7d6c5b")


def secrets(address):
    """Every secret in SECRETS, in every place a line can carry one: the
    query of an access line's path, a token in its path, the query of a URL
    in an application line, a key in free text and in another record field;
    then a bad frame holding them. Acked."""
    now = int(time.time())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    meta = {"ecs_cluster": "prod", "ecs_task_arn": "arn:aws:ecs:us-east-1:1:task/prod/0123abcd"}
    access = ('[%s] "GET /reset/tok_9f8e7d6c5b?token=s3cret&page=2 HTTP/1.1" 200 - 0 5 3 2 '
              '"10.0.0.1" "curl/8" "req-1" "orders" "10.0.2.1:80"' % stamp)
    records = [
        dict(meta, container_name="/envoy", log=access),
        dict(meta, container_name="/app", log="GET https://api.example.com/login?user=bob&password=hunter2 failed"),
        dict(meta, container_name="/app", log="using key AKIAIOSFODNN7EXAMPLE for upload", note="AKIAIOSFODNN7EXAMPLE"),
    ]
    s = connect(address)
    s.sendall(frame_with_option(["app.logs", [[now, r] for r in records]], {"chunk": "secrets"}))
    ack = read_ack(s)
    s.close()
    bad = connect(address)
    bad.sendall(b"\x92\xa1t" + msgpack.packb({"log": " ".join(SECRETS)}))
    bad.close()
    report(ack=ack)


def bulk(address, count, first="0", per_frame="500"):
    """COUNT events with ids FIRST.., alternately an Envoy access line from
    container envoy and an application line from container app, in
    Forward-mode frames that ask for acks. Prints the number of acks."""
    count, first, per_frame = int(count), int(first), int(per_frame)
    s = connect(address)
    acks = 0
    for start in range(first, first + count, per_frame):
        chunk = "c%d" % start
        entries = bulk_records(start, min(per_frame, first + count - start))
        s.sendall(frame_with_option(["app.logs", entries], {"chunk": chunk}))
        ack = read_ack(s)
        if ack != {"ack": chunk}:
            raise SystemExit("bad ack %r for %s" % (ack, chunk))
        acks += 1
    s.close()
    report(acks=acks)


def big(address, size):
    """One application line of SIZE bytes ("big " then "x"s), acked."""
    now = time.time()
    record = {"container_name": "/app", "ecs_task_arn": "arn:aws:ecs:us-east-1:1:task/prod/0123abcd",
              "ecs_cluster": "prod", "log": "big " + "x" * (int(size) - 4)}
    s = connect(address)
    s.sendall(frame_with_option(["app.logs", [[event_time(int(now), 0), record]]], {"chunk": "big"}))
    report(ack=read_ack(s))
    s.close()


def frames(address, path, wait="wait"):
    """Forward-mode frames from a JSON file, [{"tag", "chunk" (or null),
    "lines": [[source, line], ...]}], sent on one connection; then, unless
    WAIT is "no-wait", every ack read (in the order they come), or
    {"closed": true} if the connection ends first."""
    with open(path) as f:
        spec = json.load(f)
    s = connect(address)
    s.settimeout(60)
    now = time.time()
    for n, frame in enumerate(spec):
        entries = [[event_time(int(now), n * 1000 + i), {"source": src, "log": line}]
                   for i, (src, line) in enumerate(frame["lines"])]
        if frame.get("chunk"):
            s.sendall(frame_with_option([frame["tag"], entries], {"chunk": frame["chunk"]}))
        else:
            s.sendall(msgpack.packb([frame["tag"], entries], use_bin_type=True))
    if wait == "no-wait":
        report(sent=len(spec))
        return
    expected = [f["chunk"] for f in spec if f.get("chunk")]
    unpacker = msgpack.Unpacker(raw=False)
    got = []
    while len(got) < len(expected):
        data = s.recv(4096)
        if not data:
            report(closed=True)
            break
        unpacker.feed(data)
        for ack in unpacker:
            got.append(ack["ack"])
            report(ack=ack["ack"])
    s.close()


SCENARIOS = {"frames": frames, "secrets": secrets, "big": big, "bulk": bulk, "bulk_until_closed": bulk_until_closed, "rude_clients": rude_clients, "containers": containers, "bad_alongside_good": bad_alongside_good, "docker_partials": docker_partials, "shared_key": shared_key, "users": users, "every_mode": every_mode, "fluent_logger": fluent_logger, "bad_then_good": bad_then_good}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
