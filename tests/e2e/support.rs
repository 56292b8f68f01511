//! Helpers for end-to-end tests: a running `sluice run`, and the Python
//! forward clients (fluent-logger, msgpack) in a virtualenv.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long to wait for something that should happen promptly (a line on
/// stdout, a listener). A liveness bound, not a performance assertion.
const PATIENCE: Duration = Duration::from_secs(30);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Python packages the tests' peers need (also installed by .ci/run).
pub const PYTHON_PACKAGES: [&str; 4] = [
    "fluent-logger==0.11.1",
    "msgpack==1.2.4",
    "moto[server]==5.2.5",
    "prometheus_client==0.26.0",
];

/// The Python with fluent-logger, msgpack and moto (with boto3):
/// `SLUICE_TEST_PYTHON`, or a virtualenv at the workspace's `.venv`,
/// created on first use.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Ok(p) = std::env::var("SLUICE_TEST_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = workspace().join(".venv");
        let python = venv.join("bin/python");
        let ready = Command::new(&python)
            .args([
                "-c",
                "import fluent, msgpack, moto.server, boto3, prometheus_client",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !ready {
            let ok = Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status();
            assert!(ok.is_ok_and(|s| s.success()), "python3 -m venv failed");
            let ok = Command::new(venv.join("bin/pip"))
                .args(["install", "-q"])
                .args(PYTHON_PACKAGES)
                .status();
            assert!(ok.is_ok_and(|s| s.success()), "pip install failed");
        }
        python
    })
}

/// Runs `forward_clients.py SCENARIO ADDRESS [ARGS]`; returns its output lines.
pub fn client(scenario: &str, address: &str) -> Vec<String> {
    client_with(scenario, address, &[])
}

pub fn client_with(scenario: &str, address: &str, args: &[&str]) -> Vec<String> {
    let args: Vec<&str> = [scenario, address]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_script("forward_clients.py", &args)
}

/// Runs one of the tests' Python scripts; returns its output lines and
/// fails the test if it fails.
fn run_script(name: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new(python())
        .arg(workspace().join("tests/e2e").join(name))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Polls `ready` every `every` until it holds; fails the test with `what`
/// after [`PATIENCE`].
pub fn wait_until(what: &str, every: Duration, ready: impl FnMut() -> bool) {
    wait_for(what, PATIENCE, every, ready);
}

/// [`wait_until`] with its own patience.
pub fn wait_for(what: &str, patience: Duration, every: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + patience;
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(every);
    }
}

/// Ports handed out by [`free_port`]: below Linux's ephemeral range
/// (32768–60999), which `bind(0)` and every outgoing connection draw from.
const TEST_PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A loopback port free when asked, for a process started later to listen
/// on. It is not one the kernel could give anyone else in the meantime: a
/// port from `bind(0)`, released and passed on, was once taken by another
/// test's outgoing connection before the sidecar could listen on it. Each
/// test process walks the range from its own starting point (by pid), and
/// never hands a port out twice.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) as u32;
        let port = (TEST_PORTS.start + (start + n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// moto's server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub addr: std::net::SocketAddr,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        wait_until("moto did not start", Duration::from_millis(50), || {
            TcpStream::connect(addr).is_ok()
        });
        Moto { child, addr }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything moto holds: log groups with their retention, and every
    /// event, read with boto3 (tests/e2e/cloudwatch_peer.py).
    pub fn dump(&self) -> CloudWatchDump {
        let mut dump = CloudWatchDump::default();
        for line in peer(&["dump", &self.endpoint()]) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            let group = v["group"].as_str().expect("group").to_string();
            match v.get("stream") {
                None => {
                    dump.groups.insert(group, v["retention"].as_i64());
                }
                Some(stream) => dump.events.push(StoredEvent {
                    group,
                    stream: stream.as_str().expect("stream").to_string(),
                    timestamp: v["timestamp"].as_i64().expect("timestamp"),
                    message: v["message"].as_str().expect("message").to_string(),
                }),
            }
        }
        dump
    }

    /// Dumps until `ready` holds for the dump (every 0.5 s, at most 60 s);
    /// fails the test with `what` after that.
    pub fn wait_for_dump(
        &self,
        what: &str,
        ready: impl Fn(&CloudWatchDump) -> bool,
    ) -> CloudWatchDump {
        let mut dump = CloudWatchDump::default();
        wait_for(
            what,
            Duration::from_secs(60),
            Duration::from_millis(500),
            || {
                dump = self.dump();
                ready(&dump)
            },
        );
        dump
    }

    pub fn create_group(&self, name: &str) {
        peer(&["create-group", &self.endpoint(), name]);
    }

    pub fn create_stream(&self, group: &str, name: &str) {
        peer(&["create-stream", &self.endpoint(), group, name]);
    }

    /// Creates `bucket` in `region` and puts the file at `path` at `key`.
    pub fn s3_put(&self, region: &str, bucket: &str, key: &str, path: &Path) {
        peer(&[
            "s3-put",
            &self.endpoint(),
            region,
            bucket,
            key,
            &path.display().to_string(),
        ]);
    }

    pub fn delete_group(&self, name: &str) {
        peer(&["delete-group", &self.endpoint(), name]);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Default)]
pub struct CloudWatchDump {
    /// Log group name to retention in days.
    pub groups: std::collections::BTreeMap<String, Option<i64>>,
    pub events: Vec<StoredEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub group: String,
    pub stream: String,
    pub timestamp: i64,
    pub message: String,
}

/// The sidecar's /metrics, parsed by prometheus_client: (content type,
/// samples as `name{labels}` to value, labels sorted).
pub fn scrape(admin: &str) -> (String, std::collections::BTreeMap<String, f64>) {
    scrape_path(admin, "/metrics")
}

/// [`scrape`] of another page of the admin endpoint.
pub fn scrape_path(admin: &str, path: &str) -> (String, std::collections::BTreeMap<String, f64>) {
    let lines = run_script("metrics_peer.py", &[&format!("http://{admin}{path}")]);
    let head: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
    let mut samples = std::collections::BTreeMap::new();
    for line in &lines[1..] {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        let labels: Vec<String> = v["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().expect("label")))
            .collect();
        let key = if labels.is_empty() {
            v["name"].as_str().expect("name").to_string()
        } else {
            format!(
                "{}{{{}}}",
                v["name"].as_str().expect("name"),
                labels.join(",")
            )
        };
        samples.insert(key, v["value"].as_f64().expect("value"));
    }
    (
        head["content_type"].as_str().expect("type").to_string(),
        samples,
    )
}

fn peer(args: &[&str]) -> Vec<String> {
    run_script("cloudwatch_peer.py", args)
}

/// A path of the tests' in the temporary directory: a file written for a
/// peer or the sidecar to read, or a directory (a spool, a file output's
/// files). Removed, with all it holds, when dropped, also when the test
/// fails.
pub struct TempPath(PathBuf);

impl TempPath {
    /// Writes `text` to `name` in the temporary directory.
    pub fn write(name: &str, text: &str) -> TempPath {
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).expect("temp file written");
        TempPath(path)
    }

    /// A path of its own in the temporary directory, for a file a peer
    /// writes (nothing is there yet).
    pub fn unique(kind: &str, extension: &str) -> TempPath {
        let path = unique_temp_path(kind, extension);
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }

    /// [`TempPath::unique`], holding `text`.
    pub fn unique_with(kind: &str, extension: &str, text: &str) -> TempPath {
        let file = TempPath::unique(kind, extension);
        std::fs::write(&file.0, text).expect("temp file written");
        file
    }

    /// A path of its own for a directory; nothing is there yet (Sluice
    /// makes its spool directory itself).
    pub fn unique_dir(kind: &str) -> TempPath {
        let path = unique_temp_path(kind, "d");
        let _ = std::fs::remove_dir_all(&path);
        TempPath(path)
    }

    /// The path as a command-line argument or a configuration value.
    pub fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl std::ops::Deref for TempPath {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempPath {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// `sluice-e2e-KIND-PID-N.EXTENSION` in the temporary directory, N counting
/// every path this process asked for.
fn unique_temp_path(kind: &str, extension: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "sluice-e2e-{kind}-{}-{}.{extension}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Where a sidecar listens: forward TCP, admin, and the unix socket.
#[derive(Clone, Debug)]
pub struct Addresses {
    pub tcp: String,
    pub admin: String,
    pub unix: PathBuf,
}

impl Addresses {
    /// Free loopback ports and a fresh socket path.
    pub fn pick() -> Addresses {
        Addresses {
            tcp: format!("127.0.0.1:{}", free_port()),
            admin: format!("127.0.0.1:{}", free_port()),
            unix: unique_temp_path("forward", "sock"),
        }
    }
}

/// A `sluice run` child with its stdout read line by line.
pub struct Sidecar {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub tcp: String,
    /// The admin endpoint's address.
    pub admin: String,
    pub unix: PathBuf,
    /// The sidecar's stderr (its JSON log lines) so far.
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Sidecar {
    /// Starts `sluice run` on a free loopback port and a fresh unix socket.
    pub fn start(extra_env: &[(&str, &str)]) -> Sidecar {
        Sidecar::start_with(&[], extra_env)
    }

    /// [`Sidecar::start`] with extra arguments after `run`.
    pub fn start_with(args: &[&str], extra_env: &[(&str, &str)]) -> Sidecar {
        Sidecar::start_wrapped(&[], args, extra_env)
    }

    /// [`Sidecar::start_with`], run by `wrapper` (a program and its
    /// arguments, which ends by running the sluice command line it is given).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str], extra_env: &[(&str, &str)]) -> Sidecar {
        Sidecar::start_at(&Addresses::pick(), wrapper, args, extra_env, &[])
    }

    /// Starts `sluice run` on the given addresses, without the variables
    /// `remove` names.
    pub fn start_at(
        addresses: &Addresses,
        wrapper: &[&str],
        args: &[&str],
        extra_env: &[(&str, &str)],
        remove: &[&str],
    ) -> Sidecar {
        let Addresses { tcp, admin, unix } = addresses.clone();
        let sluice = env!("CARGO_BIN_EXE_sluice");
        let mut command = match wrapper.split_first() {
            None => Command::new(sluice),
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(sluice);
                c
            }
        };
        command
            .arg("run")
            .args(args)
            // No drain window unless a test asks for one: stopping is quick.
            .env("SLUICE_SHUTDOWN_DRAIN", "0s")
            .env("SLUICE_FORWARD_LISTEN", &tcp)
            .env("SLUICE_ADMIN_LISTEN", &admin)
            .env("SLUICE_FORWARD_UNIX_PATH", &unix)
            .envs(extra_env.iter().copied());
        for name in remove {
            command.env_remove(name);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice starts");
        // The sidecar's own log lines: kept for the test, and shown.
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        let kept = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                kept.lock().expect("lock").push(line);
            }
        });
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        wait_until(
            "sluice did not start listening",
            Duration::from_millis(20),
            || TcpStream::connect(&tcp).is_ok() && unix.exists(),
        );
        Sidecar {
            child,
            lines,
            tcp,
            admin,
            unix,
            logs,
        }
    }

    pub fn unix_address(&self) -> String {
        format!("unix:{}", self.unix.display())
    }

    /// The next `n` lines the sidecar writes on stdout.
    pub fn lines(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.lines
                    .recv_timeout(PATIENCE)
                    .unwrap_or_else(|_| panic!("only {i} of {n} lines arrived"))
            })
            .collect()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit; returns the status and any
    /// stdout lines written after the ones already read.
    pub fn stop(self) -> (ExitStatus, Vec<String>) {
        self.terminate();
        self.wait()
    }

    /// kill -9, and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM failed");
    }

    /// Waits for the exit; returns the status and the stdout lines not read yet.
    pub fn wait(mut self) -> (ExitStatus, Vec<String>) {
        let status = self.child.wait().expect("sluice exits");
        // Read until the reader thread sees EOF and hangs up, so no line the
        // process wrote before exiting is missed.
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            rest.push(line);
        }
        (status, rest)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A sidecar killed with SIGKILL leaves its socket behind; the
        // process is gone, so the file is no one's now.
        let _ = std::fs::remove_file(&self.unix);
    }
}

/// The ECS agent stand-in (tests/e2e/ecs_agent.py serve): task metadata v4
/// and container credentials on a loopback port, stopped when dropped.
pub struct EcsAgent {
    child: Child,
    pub port: u16,
    /// The task it serves and the port it wrote, removed after it stops.
    _files: [TempPath; 2],
}

impl EcsAgent {
    /// Serves `task` (the v4 `/task` answer) after `delay_s`; credentials
    /// only to requests whose Authorization header is `token`.
    pub fn start(task: &serde_json::Value, delay_s: f64, token: &str) -> EcsAgent {
        let task_file = TempPath::unique_with("agent-task", "json", &task.to_string());
        let port_file = TempPath::unique("agent-port", "port");
        let child = Command::new(python())
            .arg(workspace().join("tests/e2e/ecs_agent.py"))
            .args(["serve", &port_file.arg()])
            .arg(&task_file)
            .args(["--delay", &delay_s.to_string(), "--token", token])
            .stdin(Stdio::null())
            .spawn()
            .expect("the agent stand-in starts");
        let mut port = 0;
        wait_until(
            "the agent stand-in did not start",
            Duration::from_millis(20),
            || {
                port = std::fs::read_to_string(&*port_file)
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                port != 0
            },
        );
        EcsAgent {
            child,
            port,
            _files: [task_file, port_file],
        }
    }

    /// `ECS_CONTAINER_METADATA_URI_V4` for this stand-in.
    pub fn metadata_uri(&self) -> String {
        format!("http://127.0.0.1:{}/v4/0a1b2c3d-router", self.port)
    }

    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` for this stand-in.
    pub fn credentials_uri(&self) -> String {
        format!("http://127.0.0.1:{}/creds", self.port)
    }

    /// What it served: (path, Authorization header).
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.port)).expect("the stand-in answers");
        use std::io::{Read, Write};
        stream
            .write_all(b"GET /requests HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("request sent");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("answer read");
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or("[]");
        let served: Vec<serde_json::Value> = serde_json::from_str(body).expect("JSON");
        served
            .iter()
            .map(|r| {
                (
                    r["path"].as_str().unwrap_or_default().to_string(),
                    r["authorization"].as_str().map(str::to_string),
                )
            })
            .collect()
    }
}

impl Drop for EcsAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Fluent Bit configuration the agent would generate for `spec` (see
/// ecs_agent.py render), written to a fresh file, removed when dropped.
pub fn render_firelens_config(spec: &serde_json::Value) -> TempPath {
    let spec_file = TempPath::unique_with("firelens-spec", "json", &spec.to_string());
    let conf = TempPath::unique("firelens", "conf");
    run_script("ecs_agent.py", &["render", &spec_file.arg(), &conf.arg()]);
    conf
}

/// Sends `lines` ((source, line) pairs) as Docker's fluentd driver does for
/// one container (see ecs_agent.py docker).
pub fn docker_send(socket: &Path, tag: &str, id: &str, docker_name: &str, lines: &[(&str, &str)]) {
    let file = TempPath::unique_with("lines", "json", &serde_json::json!(lines).to_string());
    run_script(
        "ecs_agent.py",
        &[
            "docker",
            &socket.display().to_string(),
            tag,
            id,
            docker_name,
            &file.arg(),
        ],
    );
}
