"""Peak memory of `sluice run` taking one hostile Forward frame: a few
bytes that claim far more memory once decoded. For each frame, a fresh
`sluice run` (stdout output, default budget) is started, sent the frame
on one connection, and its peak RSS (`VmHWM`) read before and 6 s after,
with what it logged at warn level (a refused frame's kind).

The frames:
- map: a Message-mode record whose map claims 4 million empty pairs
  (8 MB; each 2-byte pair a 56-byte field).
- entries: a Forward frame of 3 million entries `[1, {"": nil}]` (14 MB;
  each 5-byte entry an event of about 90 bytes).
- nils: a Message-mode record `{"a": [nil x 8 million]}` (8 MB; each nil
  two tree nodes).
- keys: maps keyed by maps, 28 deep, around a key of 20 quotes (each level
  escapes the key's JSON text again, doubling it).

Usage (after a release build; needs the venv of ../shared/peers/build-peers.sh):
  ~/peers/venv/bin/python benches/frame_bombs.py target/release/sluice [map|entries|nils|keys ...]
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_fluent_bit as common  # noqa: E402


def map_bomb():
    n = 4_000_000
    return b"\x93\xa1t\x01\xdf" + struct.pack(">I", n) + b"\xa0\xc0" * n


def entries_bomb():
    n = 3_000_000
    return b"\x92\xa1t\xdd" + struct.pack(">I", n) + b"\x92\x01\x81\xa0\xc0" * n


def nils_bomb():
    n = 8_000_000
    return b"\x93\xa1t\x01\x81\xa1a\xdd" + struct.pack(">I", n) + b"\xc0" * n


def keys_bomb():
    key = b"\xb4" + b'"' * 20
    for _ in range(28):
        key = b"\x81" + key + b"\xc0"
    return b"\x93\xa1t\x01\x81" + key + b"\xc0"


BOMBS = {"map": map_bomb, "entries": entries_bomb, "nils": nils_bomb, "keys": keys_bomb}


def one(binary, name):
    frame = BOMBS[name]()
    port = common.free_port()
    env = dict(os.environ, SLUICE_FORWARD_LISTEN="127.0.0.1:%d" % port, SLUICE_OUTPUT_TYPE="stdout",
               SLUICE_ADMIN_LISTEN="", SLUICE_FIRELENS_CONFIG="")
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([binary, "run"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            common.wait_port(port)
            time.sleep(0.5)
            before = common.status_kib(p.pid, "VmHWM") / 1024
            started = time.time()
            s = socket.create_connection(("127.0.0.1", port))
            s.settimeout(60)
            try:
                s.sendall(frame)
                sent = "sent"
            except OSError as e:
                sent = "send ended: %s" % e.strerror
            time.sleep(6)
            after = common.status_kib(p.pid, "VmHWM") / 1024
            s.close()
        finally:
            p.terminate()
            p.wait(timeout=30)
        err.seek(0)
        kinds = sorted({line.split('"kind":"')[1].split('"')[0]
                        for line in err.read().decode().splitlines() if '"kind":"' in line})
    print("%-8s %6.1f MiB frame, %s: peak RSS %.1f -> %.1f MiB; refused as %s (%.1f s)"
          % (name, len(frame) / 2**20, sent, before, after, ",".join(kinds) or "nothing",
             time.time() - started))


def main():
    binary = sys.argv[1]
    for name in sys.argv[2:] or list(BOMBS):
        one(binary, name)


if __name__ == "__main__":
    main()
