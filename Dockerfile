# Sluice: the log sidecar for Envoy on Amazon ECS.
#
# Build:  docker build -t sluice .
# The runtime stage is Debian bookworm slim with a shell, curl and netcat:
# the container health checks AWS documents for aws-for-fluent-bit run in
# the router (`CMD-SHELL`, `nc 127.0.0.1 8877`, `curl -f
# http://127.0.0.1:2020/api/v1/health`), and a drop-in must pass them.
# Sluice starts as root only to create its FireLens unix socket and runs
# as the unprivileged user 65532 from then on. How this was checked
# without a Docker engine: see "Container image" in the README.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Only the sidecar binary; --locked keeps the image on Cargo.lock.
RUN cargo build --release --locked -p sluice \
 && install -D -m 0755 target/release/sluice /out/sluice \
 && install -d -m 0700 /out/spool

# ca-certificates: the CloudWatch client (rustls with the platform's roots,
# through rustls-native-certs) needs them for HTTPS to the regional
# endpoint. /bin/sh, curl and nc: for the task definition's health check.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl netcat-openbsd \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/sluice /usr/local/bin/sluice
# aws-for-fluent-bit's built-in configuration files that task definitions
# name in config-file-value (/fluent-bit/configs/parse-json.conf, ...).
COPY image/fluent-bit/ /fluent-bit/
# The spool's directory (off unless SLUICE_SPOOL_DIR is set), owned by the
# runtime user: a task volume mounted here starts with this owner and mode.
COPY --from=build --chown=65532:65532 /out/spool /var/spool/sluice
# Declared, so that a task volume mounted at this exact path starts with the
# image's owner and mode (on Fargate a bind-mounted volume the image does
# not declare starts as root's, 0755, and user 65532 could not write it).
VOLUME ["/var/spool/sluice"]
# The storage.path of AWS's filesystem-buffering example for Fluent Bit,
# where such a configuration puts Sluice's spool: writable by the runtime
# user, as the spool's own directory is. (Not declared a volume: only
# configurations that name it use it.)
COPY --from=build --chown=65532:65532 /out/spool /var/log/flb-storage
# Root at the start, as aws-for-fluent-bit runs: ECS makes the router's
# /var/run (where /var/run/fluent.sock goes) root's, mode 0755, unless the
# task definition names the container's `user`, and task definitions
# written for aws-for-fluent-bit do not. `run --user` binds the forward
# listeners, then switches every thread to 65532 before it writes anything
# (the spool). A task definition with "user": "65532" never runs it as root
# at all.
USER 0:0
# As a FireLens log router, Sluice reads the configuration ECS generates at
# /fluent-bit/etc/fluent-bit.conf (a bind mount) and listens where it says:
# the unix socket /var/run/fluent.sock, and 127.0.0.1:24224 in awsvpc mode.
# Otherwise the forward input listens on 127.0.0.1:24224 by default: containers of an
# awsvpc task (Fargate) share one network namespace. In bridge mode set
# SLUICE_FORWARD_LISTEN=0.0.0.0:24224 in the task definition.
# Fluent Forward; the admin endpoint (/healthz, /metrics) on 2020, also on
# 127.0.0.1 by default (SLUICE_ADMIN_LISTEN=0.0.0.0:2020 to scrape it from
# outside the task).
EXPOSE 24224 2020
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/sluice", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run", "--user", "65532:65532"]
