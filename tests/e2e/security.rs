//! Secrets never leave the redaction boundary: the same secrets are pushed
//! through every path out of the process (stdout, files, CloudWatch, the
//! spool on disk, the sidecar's own logs, /metrics and its labels) and
//! every byte that came out is searched for them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::cloudwatch::cloudwatch_env;
use crate::proxy::{switchable, DOWN, PASS};
use crate::support::{client, Moto, Sidecar, TempPath};

/// As in forward_clients.py.
const SECRETS: [&str; 4] = [
    "s3cret",
    "hunter2",
    "AKIAIOSFODNN7EXAMPLE",
    "tok_9f8e7d6c5b",
];

/// The user patterns for the secrets query redaction does not cover.
const PATTERNS: &str = r#"["AKIA[0-9A-Z]{16}", "tok_[0-9a-f]+"]"#;

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} leaked through {what}:\n{text}"
        );
    }
}

/// The raw /metrics page.
fn metrics_text(admin: &str) -> String {
    let mut conn = TcpStream::connect(admin).expect("admin");
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nhost: sluice\r\nconnection: close\r\n\r\n"
    )
    .expect("GET");
    let mut page = String::new();
    conn.read_to_string(&mut page).expect("page");
    page
}

/// Every file under `dir`, concatenated (as lossy UTF-8).
fn all_files(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.push_str(&all_files(&path));
        } else {
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(&path).expect("file"),
            ));
        }
    }
    out
}

fn send_secrets(sidecar: &Sidecar) {
    let out = client("secrets", &sidecar.tcp);
    assert_eq!(out, [r#"{"ack": {"ack": "secrets"}}"#]);
}

#[test]
fn the_unix_socket_is_private_by_default_and_as_configured() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let sidecar = Sidecar::start(&[]);
    let meta = std::fs::metadata(&sidecar.unix).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Still reachable at its path (it was renamed into place after bind).
    let out = client("secrets", &sidecar.unix_address());
    assert_eq!(out, [r#"{"ack": {"ack": "secrets"}}"#]);
    drop(sidecar);
    let sidecar = Sidecar::start(&[("SLUICE_FORWARD_UNIX_MODE", "0660")]);
    let meta = std::fs::metadata(&sidecar.unix).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    // No staging name is left beside it.
    let dir = sidecar.unix.parent().expect("dir");
    let name = sidecar
        .unix
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string();
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&name) && n != &name)
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn no_secret_leaves_through_stdout_files_logs_or_metrics() {
    // stdout.
    let sidecar = Sidecar::start(&[("SLUICE_REDACT_PATTERNS", PATTERNS)]);
    send_secrets(&sidecar);
    let lines = sidecar.lines(3).join("\n");
    assert!(lines.contains("token=REDACTED"), "{lines}");
    assert!(lines.contains("password=REDACTED"), "{lines}");
    let metrics = metrics_text(&sidecar.admin);
    assert!(
        metrics.contains("sluice_route_requests_total{"),
        "{metrics}"
    );
    let logs = sidecar.logs.clone();
    let (status, rest) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    assert_no_secret("stdout", &lines);
    assert_no_secret("stdout", &rest.join("\n"));
    assert_no_secret("/metrics", &metrics);
    let logs = logs.lock().expect("lock").join("\n");
    assert!(
        logs.contains("closing a forward connection that sent a bad frame"),
        "{logs}"
    );
    assert_no_secret("the sidecar's logs", &logs);

    // Files, with the statistics (EMF) beside the events.
    let dir = TempPath::unique_dir("secrets");
    let dir_text = dir.arg();
    let sidecar = Sidecar::start(&[
        ("SLUICE_REDACT_PATTERNS", PATTERNS),
        ("SLUICE_OUTPUT_TYPE", "file"),
        ("SLUICE_FILE_DIR", &dir_text),
    ]);
    send_secrets(&sidecar);
    let metrics = metrics_text(&sidecar.admin);
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let files = all_files(&dir);
    assert!(files.contains("token=REDACTED"), "{files}");
    assert!(files.contains("\"_aws\""), "no statistics: {files}");
    assert_no_secret("the file output", &files);
    assert_no_secret("/metrics", &metrics);
}

#[test]
fn no_secret_leaves_through_cloudwatch_or_the_spool() {
    let moto = Moto::start();
    // CloudWatch is down at first, so that the events wait in the spool.
    let (proxy, mode) = switchable(moto.addr, None);
    mode.store(DOWN, Ordering::Relaxed);
    let spool = TempPath::unique_dir("secrets-spool");
    let spool_text = spool.arg();
    let env = cloudwatch_env(
        &proxy.endpoint(),
        &[
            ("SLUICE_REDACT_PATTERNS", PATTERNS),
            ("SLUICE_SPOOL_DIR", &spool_text),
            ("SLUICE_STATS_ENABLED", "true"),
            ("SLUICE_STATS_INTERVAL", "1s"),
            ("SLUICE_CLOUDWATCH_APP_FORMAT", "json"),
        ],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sidecar = Sidecar::start(&env);
    send_secrets(&sidecar);
    // Acked, so on disk: what is there is redacted.
    let on_disk = all_files(&spool);
    assert!(on_disk.contains("token=REDACTED"), "{on_disk}");
    assert_no_secret("the spool", &on_disk);
    mode.store(PASS, Ordering::Relaxed);
    let dump = moto.wait_for_dump("the events and statistics never arrived", |dump| {
        dump.events.len() >= 3 && dump.events.iter().any(|e| e.message.contains("\"_aws\""))
    });
    let metrics = metrics_text(&sidecar.admin);
    let logs = sidecar.logs.clone();
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let stored: Vec<String> = dump
        .events
        .iter()
        .map(|e| format!("{} {} {}", e.group, e.stream, e.message))
        .collect();
    let stored = stored.join("\n");
    assert!(stored.contains("password=REDACTED"), "{stored}");
    assert_no_secret("CloudWatch", &stored);
    let requests: Vec<String> = proxy
        .recorded()
        .iter()
        .map(|r| r.body.to_string())
        .collect();
    assert_no_secret("a CloudWatch request", &requests.join("\n"));
    assert_no_secret("/metrics", &metrics);
    assert_no_secret("the sidecar's logs", &logs.lock().expect("lock").join("\n"));
}
