//! Helpers for end-to-end tests: a running `sluice run`, and the Python
//! forward clients (fluent-logger, msgpack) in a virtualenv.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

/// How long to wait for something that should happen promptly (a line on
/// stdout, a listener). A liveness bound, not a performance assertion.
const PATIENCE: Duration = Duration::from_secs(30);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python with fluent-logger and msgpack: `SLUICE_TEST_PYTHON`, or a
/// virtualenv at the workspace's `.venv`, created on first use.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Ok(p) = std::env::var("SLUICE_TEST_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = workspace().join(".venv");
        let python = venv.join("bin/python");
        let ready = Command::new(&python)
            .args(["-c", "import fluent, msgpack"])
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
                .args(["install", "-q", "fluent-logger==0.11.1", "msgpack==1.2.4"])
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
    let script = workspace().join("tests/e2e/forward_clients.py");
    let out = Command::new(python())
        .arg(script)
        .args([scenario, address])
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{scenario} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A `sluice run` child with its stdout read line by line.
pub struct Sidecar {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub tcp: String,
    pub unix: PathBuf,
}

impl Sidecar {
    /// Starts `sluice run` on a free loopback port and a fresh unix socket.
    pub fn start(extra_env: &[(&str, &str)]) -> Sidecar {
        Sidecar::start_with(&[], extra_env)
    }

    /// [`Sidecar::start`] with extra arguments after `run`.
    pub fn start_with(args: &[&str], extra_env: &[(&str, &str)]) -> Sidecar {
        static N: AtomicUsize = AtomicUsize::new(0);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let tcp = format!("127.0.0.1:{port}");
        let unix = std::env::temp_dir().join(format!(
            "sluice-e2e-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .args(args)
            // No drain window unless a test asks for one: stopping is quick.
            .env("SLUICE_SHUTDOWN_DRAIN", "0s")
            .env("SLUICE_FORWARD_LISTEN", &tcp)
            .env("SLUICE_FORWARD_UNIX_PATH", &unix)
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sluice starts");
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
        let deadline = std::time::Instant::now() + PATIENCE;
        while TcpStream::connect(&tcp).is_err() || !unix.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "sluice did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sidecar {
            child,
            lines,
            tcp,
            unix,
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
    }
}
