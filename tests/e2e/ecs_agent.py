"""A stand-in for what the ECS agent and Docker give a FireLens log router,
for Sluice's end-to-end tests. Everything on loopback.

Usage:
  ecs_agent.py render SPEC.json OUT.conf
      Writes the Fluent Bit configuration exactly as the agent's template
      renders it (amazon-ecs-agent firelensconfig_unix.go and the vendored
      go-config-generator fluent-bit template; shared/firelens.md §1): an
      empty line before each section, keys in the order Go's text/template
      ranges over a map (sorted byte-wise), `Match <container>-firelens*`.
      SPEC: {"network_mode": "awsvpc"|"bridge"|"host", "socket": PATH,
             "port": N, "health_port": N, "mem_buf_limit": N|null,
             "cluster": NAME, "task_arn": ARN, "task_definition": "fam:rev",
             "containers": {NAME: {log option: value, ...}},
             "include": [PATH, ...]}   (config-file-value, file type)
  ecs_agent.py serve PORT_FILE TASK.json [--delay SECONDS] [--token TOKEN]
      Serves task metadata v4 at /v4/<id>/task (after --delay seconds) and
      container credentials at /creds (the Authorization header must equal
      --token), and /requests: the paths and Authorization headers served
      so far. Writes its port to PORT_FILE once listening; runs until
      killed.
  ecs_agent.py docker SOCKET TAG CONTAINER_ID DOCKER_NAME LINES.json
      Sends each line as Docker's fluentd driver does: one Message-mode
      frame [tag, EventTime, record, {}] per line over the unix socket, the
      record's values all strings (container_id, container_name, source,
      log), time with sub-second precision (EventTime, ext type 0).
      LINES: [[source, line], ...]; "{now}" in a line becomes the current
      UTC time as Envoy prints START_TIME.
"""

import http.server
import json
import socket
import sys
import threading
import time

import msgpack


def render(spec):
    out = []

    def section(name, lines):
        out.append("")
        out.append("[%s]" % name)
        out.extend(lines)

    containers = spec["containers"]
    # Inputs: the unix socket always; TCP and the health check for bridge
    # and awsvpc only.
    forward = ["    Name forward"]
    options = {"unix_path": spec["socket"]}
    if spec.get("mem_buf_limit") is not None:
        options["Mem_Buf_Limit"] = "%dMB" % spec["mem_buf_limit"]
    forward += ["    %s %s" % (k, options[k]) for k in sorted(options)]
    section("INPUT", forward)
    mode = spec.get("network_mode", "awsvpc")
    if mode in ("bridge", "awsvpc"):
        listen = "0.0.0.0" if mode == "bridge" else "127.0.0.1"
        section("INPUT", ["    Name forward", "    Listen %s" % listen, "    Port %d" % spec["port"]])
        section("INPUT", ["    Name tcp", "    Tag firelens-healthcheck", "    Listen 127.0.0.1",
                          "    Port %d" % spec["health_port"]])
    # Filters: every include before every exclude, then the metadata.
    for name in sorted(containers):
        pattern = containers[name].get("include-pattern")
        if pattern:
            section("FILTER", ["    Name   grep", "    Match %s-firelens*" % name, "    Regex  log %s" % pattern])
    for name in sorted(containers):
        pattern = containers[name].get("exclude-pattern")
        if pattern:
            section("FILTER", ["    Name   grep", "    Match %s-firelens*" % name, "    Exclude log %s" % pattern])
    metadata = {"ecs_cluster": spec["cluster"], "ecs_task_arn": spec["task_arn"],
                "ecs_task_definition": spec["task_definition"]}
    enabled = all(c.get("enable-ecs-log-metadata", "true").lower() == "true" for c in containers.values())
    if enabled:
        section("FILTER", ["    Name record_modifier", "    Match *"]
                + ["    Record %s %s" % (k, metadata[k]) for k in sorted(metadata)])
    for path in spec.get("include", []):
        out.append("")
        out.append("@INCLUDE %s" % path)
    if mode in ("bridge", "awsvpc"):
        section("OUTPUT", ["    Name null", "    Match firelens-healthcheck"])
    skipped = {"Name", "include-pattern", "exclude-pattern", "enable-ecs-log-metadata",
               "config-file-type", "config-file-value", "log-driver-buffer-limit"}
    for name in sorted(containers):
        opts = containers[name]
        if "Name" not in opts:
            continue
        rest = {k: v for k, v in opts.items() if k not in skipped}
        section("OUTPUT", ["    Name %s" % opts["Name"], "    Match %s-firelens*" % name]
                + ["    %s %s" % (k, rest[k]) for k in sorted(rest)])
    return "\n".join(out) + "\n"


class Agent(http.server.BaseHTTPRequestHandler):
    task = None
    delay = 0.0
    token = None
    served = []

    def do_GET(self):
        Agent.served.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        if self.path == "/requests":
            return self.answer(200, Agent.served[:-1])
        if self.path.startswith("/v4/") and self.path.endswith("/task"):
            time.sleep(Agent.delay)
            return self.answer(200, Agent.task)
        if self.path == "/creds":
            if Agent.token is not None and self.headers.get("Authorization") != Agent.token:
                return self.answer(401, {"message": "bad token"})
            return self.answer(200, {
                "AccessKeyId": "ASIAFROMTHEAGENT", "SecretAccessKey": "secret-from-the-agent",
                "Token": "session-token-from-the-agent", "RoleArn": "arn:aws:iam::123456789012:role/task",
                "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
            })
        return self.answer(404, {"message": "not found"})

    def answer(self, code, body):
        data = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except BrokenPipeError:
            pass

    def log_message(self, *args):
        pass


def serve(port_file, task_file, args):
    with open(task_file) as f:
        Agent.task = json.load(f)
    if "--delay" in args:
        Agent.delay = float(args[args.index("--delay") + 1])
    if "--token" in args:
        Agent.token = args[args.index("--token") + 1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


def event_time(t):
    secs = int(t)
    nanos = int((t - secs) * 1e9)
    return msgpack.ExtType(0, secs.to_bytes(4, "big") + nanos.to_bytes(4, "big"))


def docker(sock_path, tag, container_id, docker_name, lines):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    for source, line in lines:
        line = line.replace("{now}", now)
        record = {"container_id": container_id, "container_name": docker_name, "source": source, "log": line}
        s.sendall(msgpack.packb([tag, event_time(time.time()), record, {}], use_bin_type=True))
    s.close()


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "render":
        with open(sys.argv[2]) as f:
            spec = json.load(f)
        with open(sys.argv[3], "w") as f:
            f.write(render(spec))
    elif command == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif command == "docker":
        with open(sys.argv[6]) as f:
            lines = json.load(f)
        docker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], lines)
    else:
        raise SystemExit("unknown command " + command)
