#!/usr/bin/env bash
# Checks the Dockerfile's runtime-stage assumptions without a Docker engine:
# the release binary needs only glibc and libgcc (what distroless
# cc-debian12 ships), runs as the unprivileged user 65532 with an empty
# environment (a task definition that names that user), passes its own
# healthcheck, accepts a forward event and stops cleanly on SIGTERM; then,
# started as root as the image starts it (`run --user 65532:65532`), it
# creates its unix socket in a directory only root may write (as ECS leaves
# a FireLens router's /var/run), runs as 65532, and delivers an event sent
# over that socket to moto through the spool in the directory the image
# creates. Needs root, debootstrap, and the tests' .venv.
# Usage: sudo scripts/check-runtime-root.sh [ROOT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-/tmp/sluice-rootfs}
port=24311

[ -x "$root/bin/sh" ] || debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
cargo build --release --locked -p sluice
install -D -m 0755 target/release/sluice "$root/usr/local/bin/sluice"

echo "== shared libraries the binary needs"
for lib in $(readelf -d target/release/sluice | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
  case "$lib" in
    libc.so.6|libm.so.6|ld-linux-x86-64.so.2|libgcc_s.so.1) echo "$lib: in distroless cc-debian12" ;;
    *) echo "$lib: NOT in distroless cc-debian12"; exit 1 ;;
  esac
done

as_nonroot() { chroot --userspec=65532:65532 "$root" /usr/bin/env -i SLUICE_FORWARD_LISTEN=127.0.0.1:$port "$@"; }
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT

echo "== run as 65532"
as_nonroot /usr/local/bin/sluice --version
as_nonroot /usr/local/bin/sluice run > /tmp/sluice-root.out 2> /tmp/sluice-root.err &
for _ in $(seq 50); do as_nonroot /usr/local/bin/sluice healthcheck && break; sleep 0.1; done
as_nonroot /usr/local/bin/sluice healthcheck && echo "healthcheck: ok"
.venv/bin/python -c "from fluent import sender; assert sender.FluentSender('app', port=$port).emit('x', {'log': 'GET /a?token=t 200'})"
sleep 0.5
pkill -TERM -f "sluice run"
wait
cat /tmp/sluice-root.out
grep -q '"log":"GET /a?token=REDACTED 200"' /tmp/sluice-root.out
grep -q '"message":"stopped"' /tmp/sluice-root.err

echo "== as the image starts it: root, then --user 65532:65532; unix socket, CloudWatch output against moto, no HOME, no AWS profile, with the spool"
# As the Dockerfile makes it: owned by 65532, mode 0700.
rm -rf "$root/var/spool/sluice"
install -d -m 0700 -o 65532 -g 65532 "$root/var/spool/sluice"
moto_port=24312
.venv/bin/python -m moto.server -H 127.0.0.1 -p $moto_port >/dev/null 2>&1 &
moto=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$moto_port) 2>/dev/null && break; sleep 0.1; done
# Where ECS mounts the router's socket directory: root's, mode 0755, when the
# task definition names no user (the debootstrap root's /var/run is that).
# (/var/run is a link to /run there.)
socket_dir="$root/run"
[ "$(stat -c '%u %a' "$socket_dir")" = "0 755" ]
rm -f "$socket_dir/fluent.sock"
chroot "$root" /usr/bin/env -i SLUICE_FORWARD_LISTEN=127.0.0.1:$port SLUICE_FORWARD_UNIX_PATH=/var/run/fluent.sock \
  SLUICE_OUTPUT_TYPE=cloudwatch SLUICE_CLOUDWATCH_ENDPOINT=http://127.0.0.1:$moto_port \
  AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test SLUICE_SHUTDOWN_DRAIN=0s \
  SLUICE_SPOOL_DIR=/var/spool/sluice \
  /usr/local/bin/sluice run --user 65532:65532 2> /tmp/sluice-root-cw.err &
for _ in $(seq 50); do as_nonroot /usr/local/bin/sluice healthcheck && break; sleep 0.1; done
sidecar=$(pgrep -f "sluice run --user")
# Every thread runs as 65532, and the socket is in root's directory.
for task in /proc/$sidecar/task/*; do grep -Eq "^Uid:(\s+65532){4}$" "$task/status"; done
[ -S "$socket_dir/fluent.sock" ]
.venv/bin/python -c "from fluent import sender; assert sender.FluentSender('app', host='unix://$socket_dir/fluent.sock').emit('x', {'log': 'GET /b?token=t 200', 'container_name': '/web'})"
sleep 0.5
pkill -TERM -f "sluice run"
while kill -0 "$sidecar" 2>/dev/null; do sleep 0.1; done
grep '"CloudWatch has every event"' /tmp/sluice-root-cw.err | grep -q '"events_delivered":1'
.venv/bin/python tests/e2e/cloudwatch_peer.py dump http://127.0.0.1:$moto_port | tee /tmp/sluice-root-cw.dump
grep -q '"message": "GET /b?token=REDACTED 200"' /tmp/sluice-root-cw.dump
grep -q '"message":"spool open"' /tmp/sluice-root-cw.err
# Delivered and stopped: only the lock file is left, owned by 65532.
[ "$(ls "$root/var/spool/sluice")" = "lock" ]
[ "$(stat -c %u "$root/var/spool/sluice/lock")" = 65532 ]
kill $moto
echo "== runtime root check passed"
