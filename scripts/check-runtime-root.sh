#!/usr/bin/env bash
# Checks the Dockerfile's runtime-stage assumptions without a Docker engine,
# in a Debian bookworm root with what the image's runtime stage installs
# (bookworm-slim + ca-certificates, curl, netcat-openbsd), made with
# debootstrap:
# - the release binary needs only libraries that root has, runs as the
#   unprivileged user 65532 with an empty environment (a task definition
#   that names that user), passes its own healthcheck, accepts a forward
#   event and stops cleanly on SIGTERM;
# - started as root as the image starts it (`run --user 65532:65532`), it
#   creates its unix socket in a directory only root may write (as ECS
#   leaves a FireLens router's /var/run), runs as 65532, and delivers an
#   event sent over that socket to moto through the spool in the directory
#   the image creates;
# - as the router of a task definition written for aws-for-fluent-bit: the
#   generated configuration at /fluent-bit/etc/fluent-bit.conf includes the
#   image's /fluent-bit/configs/parse-json.conf and a filesystem-buffering
#   file whose storage.path is the directory the image makes (the spool
#   opens there as 65532), and the health checks AWS documents pass
#   through the root's /bin/sh, nc and curl;
# - a parser's Time_Zone finds its zone in the root's /usr/share/zoneinfo
#   (tzdata, which bookworm-slim has) and places a line's time in it;
# - a tail input's DB opens as 65532 in /var/log/flb-storage (the
#   directory the image gives that user), and a restart sends only what
#   was written while the router was stopped;
# - with the image's plugin-metrics-to-cloudwatch.conf: its exec input's
#   curl reads the admin endpoint in the root, and the counters reach
#   CloudWatch (moto).
# Needs root, debootstrap, and the tests' .venv.
# Usage: sudo scripts/check-runtime-root.sh [ROOT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-/tmp/sluice-rootfs-slim}
port=24311

[ -x "$root/usr/bin/curl" ] || debootstrap --variant=minbase --include=ca-certificates,curl,netcat-openbsd \
  bookworm "$root" http://deb.debian.org/debian
cargo build --release --locked -p sluice
install -D -m 0755 target/release/sluice "$root/usr/local/bin/sluice"
# As the Dockerfile's COPY image/fluent-bit/ /fluent-bit/.
rm -rf "$root/fluent-bit" && cp -r image/fluent-bit "$root/fluent-bit"

echo "== shared libraries the binary needs, found in the root"
chroot "$root" /usr/bin/ldd /usr/local/bin/sluice
if chroot "$root" /usr/bin/ldd /usr/local/bin/sluice | grep -q "not found"; then exit 1; fi

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
# Stops the sidecar ($sidecar) once it has had time to send, checks from its
# log ($1) that CloudWatch has the one event, and writes moto's store to $2.
stop_after_one_event() {
  sleep 0.5
  pkill -TERM -f "sluice run"
  while kill -0 "$sidecar" 2>/dev/null; do sleep 0.1; done
  grep '"CloudWatch has every event"' "$1" | grep -q '"events_delivered":1'
  .venv/bin/python tests/e2e/cloudwatch_peer.py dump "http://127.0.0.1:$moto_port" | tee "$2"
}
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
stop_after_one_event /tmp/sluice-root-cw.err /tmp/sluice-root-cw.dump
grep -q '"message": "GET /b?token=REDACTED 200"' /tmp/sluice-root-cw.dump
grep -q '"message":"spool open"' /tmp/sluice-root-cw.err
# Delivered and stopped: only the lock file is left, owned by 65532.
[ "$(ls "$root/var/spool/sluice")" = "lock" ]
[ "$(stat -c %u "$root/var/spool/sluice/lock")" = 65532 ]

echo "== a task definition written for aws-for-fluent-bit: parse-json.conf and AWS's health checks"
mkdir -p "$root/fluent-bit/etc"
# As the agent generates it for awsvpc, with config-file-value
# /fluent-bit/configs/parse-json.conf.
cat > "$root/fluent-bit/etc/fluent-bit.conf" <<CONF

[INPUT]
    Name forward
    Mem_Buf_Limit 25MB
    unix_path /var/run/fluent.sock

[INPUT]
    Name forward
    Listen 127.0.0.1
    Port $port

[INPUT]
    Name tcp
    Tag firelens-healthcheck
    Listen 127.0.0.1
    Port 8877

[FILTER]
    Name record_modifier
    Match *
    Record ecs_cluster prod

@INCLUDE /fluent-bit/configs/parse-json.conf
@INCLUDE /fluent-bit/etc/storage.conf

[OUTPUT]
    Name null
    Match firelens-healthcheck

[OUTPUT]
    Name cloudwatch_logs
    Match app-firelens*
    auto_create_group true
    endpoint http://127.0.0.1:$moto_port
    log_group_name /ecs/parsed
    log_stream_prefix app-
    region us-east-1
CONF
# AWS's filesystem-buffering example: the generated unix input declared
# again with storage.type filesystem, in the storage.path the image makes
# (as the Dockerfile makes it: owned by 65532, mode 0700).
cat > "$root/fluent-bit/etc/storage.conf" <<CONF
[SERVICE]
    storage.path /var/log/flb-storage

[INPUT]
    Name forward
    unix_path /var/run/fluent.sock
    storage.type filesystem
CONF
rm -rf "$root/var/log/flb-storage"
install -d -m 0700 -o 65532 -g 65532 "$root/var/log/flb-storage"
rm -f "$socket_dir/fluent.sock"
chroot "$root" /usr/bin/env -i AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test SLUICE_SHUTDOWN_DRAIN=0s \
  /usr/local/bin/sluice run --user 65532:65532 2> /tmp/sluice-root-parse.err &
for _ in $(seq 50); do [ -S "$socket_dir/fluent.sock" ] && break; sleep 0.1; done
sidecar=$(pgrep -f "sluice run --user")
# The checks of amazon-ecs-firelens-examples, as ECS runs a CMD-SHELL check.
in_root() { timeout 5 chroot --userspec=65532:65532 "$root" /bin/sh -c "$1"; }
in_root "echo '{\"health\": \"check\"}' | nc 127.0.0.1 8877 || exit 1" && echo "tcp health check: ok"
in_root "curl -f http://127.0.0.1:2020/api/v1/uptime || exit 1" && echo
in_root "curl -f http://127.0.0.1:2020/api/v1/health || exit 1"
# The line's time, a minute ago, in the json parser's Time_Format.
logged=$(( $(date +%s) - 60 ))
.venv/bin/python -c "
import json, time
from fluent import sender
t = time.strftime('%d/%b/%Y:%H:%M:%S +0000', time.gmtime($logged))
line = json.dumps({'level': 'warn', 'msg': 'GET /c?token=t', 'time': t})
assert sender.FluentSender('app-firelens-1', host='unix://$socket_dir/fluent.sock').emit(None, {'log': line, 'source': 'stdout'})"
stop_after_one_event /tmp/sluice-root-parse.err /tmp/sluice-root-parse.dump
grep -q '"message": "{\\"ecs_cluster\\":\\"prod\\",\\"level\\":\\"warn\\",\\"msg\\":\\"GET /c?token=REDACTED\\",\\"source\\":\\"stdout\\"}"' /tmp/sluice-root-parse.dump
grep -q "\"timestamp\": ${logged}000" /tmp/sluice-root-parse.dump
grep '"message":"spool open"' /tmp/sluice-root-parse.err | grep -q '"dir":"/var/log/flb-storage"'
[ "$(ls "$root/var/log/flb-storage")" = "lock" ]
[ "$(stat -c %u "$root/var/log/flb-storage/lock")" = 65532 ]
rm -rf "$root/fluent-bit/etc"

echo "== a parser's Time_Zone, read from the root's time zone database"
mkdir -p "$root/fluent-bit/etc"
cat > "$root/fluent-bit/etc/fluent-bit.conf" <<CONF
[SERVICE]
    Parsers_File /fluent-bit/etc/parsers.conf

[INPUT]
    Name forward
    unix_path /var/run/fluent.sock

[FILTER]
    Name parser
    Match *
    Key_Name log
    Parser new_york

[OUTPUT]
    Name cloudwatch_logs
    Match *
    endpoint http://127.0.0.1:$moto_port
    log_group_name /ecs/zoned
    log_stream_name app
    auto_create_group true
    region us-east-1
CONF
cat > "$root/fluent-bit/etc/parsers.conf" <<CONF
[PARSER]
    Name new_york
    Format regex
    Regex ^(?<time>[^ ]+ [^ ]+) (?<msg>.*)$
    Time_Format %Y-%m-%d %H:%M:%S
    Time_Zone America/New_York
CONF
rm -f "$socket_dir/fluent.sock"
chroot "$root" /usr/bin/env -i AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test SLUICE_SHUTDOWN_DRAIN=0s \
  /usr/local/bin/sluice run --user 65532:65532 2> /tmp/sluice-root-zone.err &
for _ in $(seq 50); do [ -S "$socket_dir/fluent.sock" ] && break; sleep 0.1; done
sidecar=$(pgrep -f "sluice run --user")
# A minute ago, as New York's wall clock (the host's own zone database).
logged=$(( $(date +%s) - 60 ))
wall=$(TZ=America/New_York date -d "@$logged" '+%Y-%m-%d %H:%M:%S')
.venv/bin/python -c "
from fluent import sender
assert sender.FluentSender('app-firelens-1', host='unix://$socket_dir/fluent.sock').emit(None, {'log': '$wall up', 'source': 'stdout'})"
stop_after_one_event /tmp/sluice-root-zone.err /tmp/sluice-root-zone.dump
grep -q "\"timestamp\": ${logged}000" /tmp/sluice-root-zone.dump
rm -rf "$root/fluent-bit/etc"

echo "== a tail input's DB in /var/log/flb-storage (65532's in the image): a restart goes on where it was"
mkdir -p "$root/fluent-bit/etc"
rm -rf "$root/logs" && install -d -m 0755 "$root/logs"
printf 'first line\n' > "$root/logs/app.log"
rm -rf "$root/var/log/flb-storage"
install -d -m 0700 -o 65532 -g 65532 "$root/var/log/flb-storage"
cat > "$root/fluent-bit/etc/fluent-bit.conf" <<CONF
[INPUT]
    Name forward
    unix_path /var/run/fluent.sock

[INPUT]
    Name tail
    Tag tailed
    Path /logs/app.log
    Read_from_Head On
    DB /var/log/flb-storage/tail.db

[OUTPUT]
    Name cloudwatch_logs
    Match tailed
    endpoint http://127.0.0.1:$moto_port
    log_group_name /ecs/tailed
    log_stream_name app
    auto_create_group true
    region us-east-1
CONF
tail_run() {
  rm -f "$socket_dir/fluent.sock"
  chroot "$root" /usr/bin/env -i AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test SLUICE_SHUTDOWN_DRAIN=0s \
    /usr/local/bin/sluice run --user 65532:65532 2> "$1" &
  for _ in $(seq 50); do [ -S "$socket_dir/fluent.sock" ] && break; sleep 0.1; done
  sidecar=$(pgrep -f "sluice run --user")
  sleep 1
  stop_after_one_event "$1" "$2"
}
tail_run /tmp/sluice-root-tail1.err /tmp/sluice-root-tail1.dump
grep -q '"message": "{\\"log\\":\\"first line\\"}"' /tmp/sluice-root-tail1.dump
# Written while the router is stopped: the restart sends it, and only it
# (stop_after_one_event checks that one event was delivered in the run).
printf 'second line\n' >> "$root/logs/app.log"
tail_run /tmp/sluice-root-tail2.err /tmp/sluice-root-tail2.dump
grep -q '"message": "{\\"log\\":\\"second line\\"}"' /tmp/sluice-root-tail2.dump
grep -q 'going on from the DB' /tmp/sluice-root-tail2.err
[ "$(stat -c %u "$root/var/log/flb-storage/tail.db")" = 65532 ]
rm -rf "$root/fluent-bit/etc" "$root/logs" "$root/var/log/flb-storage"
install -d -m 0700 -o 65532 -g 65532 "$root/var/log/flb-storage"

echo "== plugin-metrics-to-cloudwatch.conf: the exec input's curl, in the root, reads the admin endpoint"
mkdir -p "$root/fluent-bit/etc"
cat > "$root/fluent-bit/etc/fluent-bit.conf" <<CONF
[INPUT]
    Name forward
    unix_path /var/run/fluent.sock

@INCLUDE /fluent-bit/configs/plugin-metrics-to-cloudwatch.conf
CONF
rm -f "$socket_dir/fluent.sock"
# AWS_ENDPOINT_URL: the included output names no endpoint; its metrics go
# to moto, where the first scrape (30 s after the start) lands.
chroot "$root" /usr/bin/env -i AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test SLUICE_SHUTDOWN_DRAIN=0s \
  AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port FLUENT_BIT_METRICS_LOG_GROUP=fb-metrics \
  FLUENT_BIT_METRICS_LOG_REGION=us-east-1 HOSTNAME=task-7 \
  /usr/local/bin/sluice run --user 65532:65532 2> /tmp/sluice-root-metrics.err &
for _ in $(seq 50); do [ -S "$socket_dir/fluent.sock" ] && break; sleep 0.1; done
sidecar=$(pgrep -f "sluice run --user")
in_root "curl -s http://127.0.0.1:2020/api/v1/metrics/prometheus" | grep -q '^fluentbit_input_records_total{name="exec.1"} 0 '
for _ in $(seq 45); do
  in_root "curl -s http://127.0.0.1:2020/api/v1/metrics/prometheus" | grep -q '^fluentbit_input_records_total{name="exec.1"} [1-9]' && break
  sleep 1
done
in_root "curl -s http://127.0.0.1:2020/api/v1/metrics/prometheus" | grep '^fluentbit_input_records_total{name="exec.1"} [1-9]'
sleep 2
pkill -TERM -f "sluice run"
while kill -0 "$sidecar" 2>/dev/null; do sleep 0.1; done
.venv/bin/python tests/e2e/cloudwatch_peer.py dump "http://127.0.0.1:$moto_port" > /tmp/sluice-root-metrics.dump
grep -q 'task-7-fb-internal-metrics' /tmp/sluice-root-metrics.dump
grep -q '\\"metric\\":\\"fluentbit_output_proc_records_total\\"' /tmp/sluice-root-metrics.dump
rm -rf "$root/fluent-bit/etc"

kill $moto
echo "== runtime root check passed"
