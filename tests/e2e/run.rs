//! `sluice run` with the embedded default (stdout output) against real
//! Fluent Forward clients.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{client, client_with, wait_until, Addresses, Sidecar, TempPath};

/// The lines the `good` client of forward_clients.py produces, in order.
fn assert_good_lines(lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            line,
            &format!(r#"{{"kind":"app","timestamp":1700000000000,"tag":"good","log":"good {i}"}}"#)
        );
    }
}

#[test]
fn every_protocol_mode_with_acks() {
    let sidecar = Sidecar::start(&[]);
    let replies = client("every_mode", &sidecar.tcp);
    assert_eq!(
        replies,
        [
            r#"{"ack": {"ack": "c1"}, "frame": "message_event_time_ack"}"#,
            r#"{"ack": {"ack": "c2"}, "frame": "forward_v2_ack"}"#,
            r#"{"ack": {"ack": "c3"}, "frame": "packed_str_ack"}"#,
            r#"{"ack": {"ack": "c4"}, "frame": "gzip_ack"}"#,
            r#"{"ack": {"ack": "c5"}, "frame": "metrics_signal"}"#,
        ]
    );
    let lines = sidecar.lines(12);
    let app = |ts: i64, tag: &str, log: &str| {
        format!(
            r#"{{"kind":"app","timestamp":{ts},"tag":"{tag}","container_name":"app","source":"stdout","log":"{log}"}}"#
        )
    };
    let t = 1_700_000_000_000i64;
    let expected = [
        app(t, "m", "message int"),
        app(t, "m", "message eventtime"),
        app(t, "f", "forward 1"),
        app(t, "f", "forward 2"),
        app(t, "f", "forward v2"),
        app(t, "p", "packed 0"),
        app(t, "p", "packed 1"),
        app(t, "p", "packed str"),
        app(t, "g", "gzip 0"),
        app(t, "g", "gzip 1"),
        app(t, "g", "gzip 2"),
        // The metrics frame (fluent_signal 1) writes nothing; the access line:
        r#"{"kind":"access","timestamp":1460751420310,"tag":"a","container_name":"app","source":"stdout","start_time":"2016-04-15T20:17:00.310Z","method":"POST","path":"/api/v1/locations?token=REDACTED","protocol":"HTTP/2","response_code":204,"bytes_received":154,"bytes_sent":0,"duration":226,"upstream_service_time":100,"forwarded_for":"10.0.35.28","user_agent":"nsq2http","request_id":"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2","authority":"locations","upstream_host":"tcp://10.0.2.1:80","route":"POST /api/v1/locations"}"#.to_string(),
    ];
    assert_eq!(lines, expected);
    let (status, rest) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "{rest:?}");
    // The secret of the query string never left the process.
    assert!(lines.iter().all(|l| !l.contains("s3cret")));
}

#[test]
fn python_fluent_logger_sender_and_asyncsender() {
    let sidecar = Sidecar::start(&[]);
    let replies = client("fluent_logger", &sidecar.tcp);
    assert_eq!(
        replies,
        [
            r#"{"client": "sender", "ok": true}"#,
            r#"{"client": "asyncsender", "ok": true}"#
        ]
    );
    // Two connections without acks: their order on stdout is not defined.
    let mut lines = sidecar.lines(2);
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"{"kind":"app","timestamp":1700000000000,"tag":"sync.app","source":"stdout","log":"from sender"}"#,
            r#"{"kind":"app","timestamp":1700000000500,"tag":"async.app","log":"from asyncsender"}"#,
        ]
    );
}

#[test]
fn bad_input_closes_only_the_offending_connection() {
    let mut sidecar = Sidecar::start(&[("SLUICE_FORWARD_MAX_CONNECTIONS", "4")]);
    let replies = client("bad_then_good", &sidecar.unix_address());
    assert_eq!(
        replies,
        [
            r#"{"bad": "invalid_msgpack", "closed_by_server": true}"#,
            r#"{"bad": "not_an_array", "closed_by_server": true}"#,
            r#"{"bad": "bad_gzip", "closed_by_server": true}"#,
            r#"{"bad": "huge_declared", "closed_by_server": true}"#,
            r#"{"bad": "truncated", "closed_by_server": false}"#,
            r#"{"ack": {"ack": "g1"}, "good": "g1"}"#,
        ]
    );
    assert_good_lines(&sidecar.lines(100));
    assert!(sidecar.is_running());
    let (status, rest) = sidecar.stop();
    assert!(status.success());
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn shared_key_handshake_refuses_a_wrong_key_and_accepts_the_right_one() {
    let mut sidecar = Sidecar::start(&[("SLUICE_FORWARD_SHARED_KEY", "k3y-of-the-task")]);
    let replies = client_with("shared_key", &sidecar.tcp, &["k3y-of-the-task"]);
    assert_eq!(
        replies,
        [
            r#"{"attempt": "wrong", "helo": "HELO", "keepalive": true, "pong_ok": false, "reason": "shared_key mismatch", "server_proves_key": null}"#,
            r#"{"attempt": "wrong", "closed_by_server": true}"#,
            r#"{"attempt": "right", "helo": "HELO", "keepalive": true, "pong_ok": true, "reason": "", "server_proves_key": true}"#,
            r#"{"ack": {"ack": "s1"}, "attempt": "right"}"#,
        ]
    );
    assert_eq!(
        sidecar.lines(1),
        [r#"{"kind":"app","timestamp":1700000000000,"tag":"secure","log":"after handshake"}"#]
    );
    // The unix socket needs no handshake (Docker's driver cannot do one).
    let replies = client("bad_then_good", &sidecar.unix_address());
    assert_eq!(
        replies.last().map(String::as_str),
        Some(r#"{"ack": {"ack": "g1"}, "good": "g1"}"#)
    );
    assert_eq!(sidecar.lines(100).len(), 100);
    assert!(sidecar.is_running());
}

#[test]
fn docker_partial_messages_are_joined() {
    let sidecar = Sidecar::start(&[]);
    let replies = client("docker_partials", &sidecar.unix_address());
    assert_eq!(
        replies,
        [
            r#"{"ack": {"ack": "d1"}, "part": 1}"#,
            r#"{"ack": {"ack": "d2"}, "part": 2}"#,
            r#"{"ack": {"ack": "d3"}, "part": 3}"#,
        ]
    );
    let lines = sidecar.lines(2);
    let line: String = (0..40_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(
        lines[0],
        format!(
            r#"{{"kind":"app","timestamp":1700000000000,"tag":"app-firelens-t1","container_name":"app","container_id":"abc","source":"stdout","log":"{line}"}}"#
        )
    );
    assert_eq!(
        lines[1],
        r#"{"kind":"app","timestamp":1700000000000,"tag":"app-firelens-t1","source":"stderr","log":"short line"}"#
    );
}

#[test]
fn each_bad_input_class_alongside_a_good_client() {
    let mut sidecar = Sidecar::start(&[("SLUICE_FORWARD_IDLE_TIMEOUT", "2")]);
    let replies = client("bad_alongside_good", &sidecar.tcp);
    assert_eq!(
        replies,
        [concat!(
            r#"{"acks_in_order": true, "bad": {"bad_gzip": true, "field_bomb": true, "gzip_bomb": true, "huge_declared": true, "#,
            r#""idle": true, "invalid_msgpack": true, "not_an_array": true, "slow": true, "wrong_types": true}, "#,
            r#""good_acks": 20}"#
        )]
    );
    assert_good_lines(&sidecar.lines(1000));
    assert!(sidecar.is_running());
    let (status, rest) = sidecar.stop();
    assert!(status.success());
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn sigterm_keeps_accepting_for_the_drain_window_then_exits_0() {
    let sidecar = Sidecar::start(&[
        ("SLUICE_SHUTDOWN_DRAIN", "3s"),
        ("SLUICE_SHUTDOWN_GRACE", "10s"),
    ]);
    sidecar.terminate();
    // Within the drain window a client still gets its events in and acked.
    assert_eq!(
        client("containers", &sidecar.tcp),
        [r#"{"ack": {"ack": "end"}}"#]
    );
    let (status, rest) = sidecar.wait();
    assert!(status.success(), "{status:?}");
    assert_eq!(rest.len(), 4, "{rest:?}");
    assert_eq!(
        rest[3],
        r#"{"kind":"app","timestamp":1700000000000,"tag":"t","log":"done"}"#
    );
}

/// jemalloc takes Sluice's options (it reports one it does not know on
/// stderr and ignores it), among them the thread that gives a burst's
/// freed pages back while the process idles.
#[test]
fn the_allocator_runs_the_thread_that_gives_idle_memory_back() {
    let sidecar = Sidecar::start(&[]);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", sidecar.pid())).expect("/proc");
    let purging = tasks
        .map(|task| std::fs::read_to_string(task.expect("task").path().join("comm")).expect("comm"))
        .filter(|name| name.trim_end() == "jemalloc_bg_thd")
        .count();
    assert_eq!(purging, 1);
    let logs = sidecar.logs.clone();
    let (status, _) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    let complaints: Vec<String> = logs
        .lock()
        .expect("lock")
        .iter()
        .filter(|l| l.contains("<jemalloc>"))
        .cloned()
        .collect();
    assert_eq!(complaints, Vec::<String>::new());
}

/// `run --user` as the image runs it: started as root, Sluice creates its
/// unix socket in a directory only root may write (as the ECS agent leaves
/// a FireLens router's /var/run when the task definition names no user),
/// then runs as the given user, every thread of it, and serves clients.
/// Needs root to start as root; elsewhere it says so and checks nothing.
#[test]
fn started_as_root_it_binds_then_runs_as_the_user() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: starting as root needs root");
        return;
    }
    let dir = TempPath::unique_dir("root-only");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let addresses = Addresses {
        unix: dir.join("fluent.sock"),
        ..Addresses::pick()
    };
    let sidecar = Sidecar::start_at(&addresses, &[], &["--user", "65534:65533"], &[], &[]);
    let status = |task: &Path, key: &str| {
        std::fs::read_to_string(task.join("status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap()
    };
    let tasks = || -> Vec<PathBuf> {
        std::fs::read_dir(format!("/proc/{}/task", sidecar.pid()))
            .unwrap()
            .map(|t| t.unwrap().path())
            .collect()
    };
    // The listener is announced once bound, a moment before the switch.
    wait_until(
        "every thread to run as 65534",
        Duration::from_millis(20),
        || {
            tasks()
                .iter()
                .all(|task| status(task, "Uid:") == "65534\t65534\t65534\t65534")
        },
    );
    let tasks = tasks();
    assert!(tasks.len() > 1, "{tasks:?}");
    for task in &tasks {
        assert_eq!(status(task, "Uid:"), "65534\t65534\t65534\t65534");
        assert_eq!(status(task, "Gid:"), "65533\t65533\t65533\t65533");
        assert_eq!(status(task, "Groups:"), "");
    }
    let replies = client("bad_then_good", &sidecar.unix_address());
    assert_eq!(
        replies.last().unwrap(),
        r#"{"ack": {"ack": "g1"}, "good": "g1"}"#
    );
    assert_good_lines(&sidecar.lines(100));
    let (status, rest) = sidecar.stop();
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "{rest:?}");
}
