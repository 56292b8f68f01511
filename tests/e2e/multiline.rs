//! Stack traces through `sluice run`: each trace one event, every ordinary
//! line exactly once, acks that wait for held lines, and the spool's
//! guarantee with a trace open at kill -9.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{client_with, scrape, wait_until, Addresses, Moto, Sidecar, TempPath};

const JAVA: [&str; 7] = [
    "2026-11-26 10:00:00.123 ERROR [main] c.e.orders.CheckoutService - checkout failed",
    "java.lang.IllegalStateException: cart is empty",
    "\tat com.example.orders.Cart.checkout(Cart.java:88)",
    "\tat com.example.orders.CheckoutService.run(CheckoutService.java:41)",
    "Caused by: java.io.IOException: stream closed",
    "\tat java.base/java.io.BufferedReader.ensureOpen(BufferedReader.java:123)",
    "\t... 2 more",
];
const PYTHON: [&str; 6] = [
    "Traceback (most recent call last):",
    "  File \"/app/main.py\", line 12, in <module>",
    "    main()",
    "  File \"/app/main.py\", line 8, in main",
    "    raise ValueError(\"bad order\")",
    "ValueError: bad order",
];
const NODE: [&str; 4] = [
    "TypeError: Cannot read properties of undefined (reading 'id')",
    "    at handler (/app/server.js:14:22)",
    "    at Layer.handle [as handle_request] (/app/node_modules/express/lib/router/layer.js:95:5)",
    "    at next (/app/node_modules/express/lib/router/route.js:149:13)",
];
const GO: [&str; 5] = [
    "panic: runtime error: index out of range [5] with length 3",
    "",
    "goroutine 1 [running]:",
    "main.main()",
    "\t/app/main.go:8 +0x1d",
];

/// Writes `frames` for forward_clients.py's `frames` scenario.
fn frames_file(name: &str, frames: &Value) -> TempPath {
    TempPath::write(
        &format!("sluice-e2e-multiline-{}-{name}.json", std::process::id()),
        &frames.to_string(),
    )
}

/// One frame per line, as Docker sends (no acks).
fn docker_frames(lines: &[(&str, &str)]) -> Vec<Value> {
    lines
        .iter()
        .map(|(tag, line)| json!({"tag": tag, "chunk": null, "lines": [["stderr", line]]}))
        .collect()
}

fn logs_by_tag(lines: &[String], tag: &str) -> Vec<String> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|v| v["tag"] == tag)
        .map(|v| v["log"].as_str().expect("log").to_string())
        .collect()
}

#[test]
fn traces_of_four_runtimes_come_out_as_one_event_each() {
    let sidecar = Sidecar::start(&[("SLUICE_MULTILINE_WAIT", "300ms")]);
    let mut app = vec!["started"];
    for trace in [&JAVA[..], &PYTHON[..], &NODE[..], &GO[..]] {
        app.extend_from_slice(trace);
    }
    app.push("stopped");
    let mut lines = Vec::new();
    for (i, line) in app.iter().enumerate() {
        lines.push(("app-firelens-t1", *line));
        lines.push((
            "other-firelens-t1",
            if i % 2 == 0 { "tick" } else { "tock" },
        ));
    }
    let mut frames = docker_frames(&lines);
    // The last frame asks for an ack: it comes once everything before it
    // is written.
    frames.push(json!({"tag": "other-firelens-t1", "chunk": "end", "lines": [["stderr", "last"]]}));
    let file = frames_file("four", &json!(frames));
    assert_eq!(
        client_with("frames", &sidecar.tcp, &[&file.arg()]),
        [r#"{"ack": "end"}"#]
    );
    let out = sidecar.lines(6 + app.len() + 1);
    let joined = |t: &[&str]| t.join("\n").trim_end().to_string();
    assert_eq!(
        logs_by_tag(&out, "app-firelens-t1"),
        [
            "started".to_string(),
            joined(&JAVA),
            joined(&PYTHON),
            joined(&NODE),
            joined(&GO),
            "stopped".to_string(),
        ]
    );
    let mut other: Vec<String> = (0..app.len())
        .map(|i| if i % 2 == 0 { "tick" } else { "tock" }.to_string())
        .collect();
    other.push("last".into());
    assert_eq!(logs_by_tag(&out, "other-firelens-t1"), other);
}

#[test]
fn a_trace_longer_than_the_size_cap_loses_nothing() {
    let sidecar = Sidecar::start(&[
        ("SLUICE_MULTILINE_WAIT", "300ms"),
        ("SLUICE_MULTILINE_MAX_SIZE", "2KiB"),
    ]);
    let frames: Vec<String> = (0..200)
        .map(|i| format!("\t/app/pkg{i:03}/file.go:{i} +0x1d"))
        .collect();
    let mut lines = vec![("app-firelens-t1", "panic: deep recursion")];
    lines.extend(frames.iter().map(|f| ("app-firelens-t1", f.as_str())));
    lines.push(("app-firelens-t1", "after"));
    let mut spec = docker_frames(&lines);
    spec.push(json!({"tag": "app-firelens-t1", "chunk": "end", "lines": [["stderr", "end"]]}));
    let file = frames_file("long", &json!(spec));
    assert_eq!(
        client_with("frames", &sidecar.tcp, &[&file.arg()]),
        [r#"{"ack": "end"}"#]
    );
    let (_, rest) = sidecar.stop();
    let logs = logs_by_tag(&rest, "app-firelens-t1");
    assert_eq!(
        logs[logs.len() - 2..].to_vec(),
        ["after".to_string(), "end".to_string()]
    );
    let trace = &logs[..logs.len() - 2];
    assert!(trace.len() > 1, "{} events", trace.len());
    assert!(trace.iter().all(|e| e.len() <= 2048));
    let mut expected = vec!["panic: deep recursion".to_string()];
    expected.extend(frames);
    assert_eq!(trace.join("\n"), expected.join("\n"));
}

#[test]
fn acks_over_frames_that_end_mid_trace() {
    let sidecar = Sidecar::start(&[("SLUICE_MULTILINE_WAIT", "300ms")]);
    let file = frames_file(
        "acks",
        &json!([
            {"tag": "app", "chunk": "a", "lines": [
                ["stdout", JAVA[0]], ["stdout", JAVA[1]], ["stdout", JAVA[2]]]},
            {"tag": "app", "chunk": "b", "lines": [
                ["stdout", JAVA[3]], ["stdout", JAVA[6]], ["stdout", "INFO after"]]},
            // The end of the input inside a trace: written after the wait.
            {"tag": "app", "chunk": "c", "lines": [
                ["stdout", GO[0]], ["stdout", GO[1]], ["stdout", GO[2]]]},
        ]),
    );
    // Acked in order, each once its lines are written.
    assert_eq!(
        client_with("frames", &sidecar.tcp, &[&file.arg()]),
        [r#"{"ack": "a"}"#, r#"{"ack": "b"}"#, r#"{"ack": "c"}"#]
    );
    let out = sidecar.lines(3);
    let java = [JAVA[0], JAVA[1], JAVA[2], JAVA[3], JAVA[6]].join("\n");
    assert_eq!(
        logs_by_tag(&out, "app"),
        [
            java,
            "INFO after".to_string(),
            GO[..3].join("\n").trim_end().to_string()
        ]
    );
}

/// kill -9 with the spool on while a trace is open: what was acked is
/// delivered after the restart; the frame whose trace was open was not
/// acked, so its client sends it again, and it arrives once, joined.
#[test]
fn kill_9_with_a_trace_open_loses_no_acked_line() {
    let moto = Moto::start();
    let spool = TempPath::unique_dir("ml-spool");
    let spool_text = spool.arg();
    let endpoint = moto.endpoint();
    let env = [
        ("SLUICE_OUTPUT_TYPE", "cloudwatch"),
        ("SLUICE_CLOUDWATCH_ENDPOINT", endpoint.as_str()),
        ("SLUICE_CLOUDWATCH_REGION", "us-east-1"),
        ("SLUICE_CLOUDWATCH_LOG_GROUP", "/ecs/ml"),
        ("SLUICE_CLOUDWATCH_APP_STREAM", "app"),
        ("SLUICE_SPOOL_DIR", spool_text.as_str()),
        // Long enough that the trace is open at the kill.
        ("SLUICE_MULTILINE_WAIT", "10m"),
        ("SLUICE_FIRELENS_CONFIG", ""),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let addresses = Addresses::pick();
    let sidecar = Sidecar::start_at(&addresses, &[], &[], &env, &[]);
    let acked = frames_file(
        "acked",
        &json!([{"tag": "app", "chunk": "c", "lines": [["stdout", "INFO one"], ["stdout", "INFO two"]]}]),
    );
    assert_eq!(
        client_with("frames", &sidecar.tcp, &[&acked.arg()]),
        [r#"{"ack": "c"}"#]
    );
    let open = json!([{"tag": "app", "chunk": "a", "lines": [
        ["stdout", JAVA[0]], ["stdout", JAVA[1]], ["stdout", JAVA[2]]]}]);
    let open_file = frames_file("open", &open);
    client_with("frames", &sidecar.tcp, &[&open_file.arg(), "no-wait"]);
    wait_until("the open trace read", Duration::from_millis(20), || {
        let (_, s) = scrape(&sidecar.admin);
        s.get("sluice_forward_events_total").copied() == Some(5.0)
    });
    sidecar.kill();

    // The client sends the unacked frame again, then the trace's end.
    let sidecar = Sidecar::start_at(&addresses, &[], &[], &env, &[]);
    let rest = frames_file(
        "rest",
        &json!([
            {"tag": "app", "chunk": "a", "lines": [
                ["stdout", JAVA[0]], ["stdout", JAVA[1]], ["stdout", JAVA[2]]]},
            {"tag": "app", "chunk": "d", "lines": [["stdout", JAVA[6]], ["stdout", "INFO three"]]},
        ]),
    );
    assert_eq!(
        client_with("frames", &sidecar.tcp, &[&rest.arg()]),
        [r#"{"ack": "a"}"#, r#"{"ack": "d"}"#]
    );
    let (status, _) = sidecar.stop();
    assert!(status.success());
    let dump = moto.wait_for_dump("every line delivered", |d| d.events.len() >= 4);
    let mut messages: Vec<&str> = dump.events.iter().map(|e| e.message.as_str()).collect();
    messages.sort_unstable();
    let trace = [JAVA[0], JAVA[1], JAVA[2], JAVA[6]].join("\n");
    let mut expected = vec!["INFO one", "INFO two", trace.as_str(), "INFO three"];
    expected.sort_unstable();
    assert_eq!(messages, expected);
}

/// A stop while a trace is open: the trace is written and its frame acked
/// at once, not after `multiline.wait`.
#[test]
fn a_stop_writes_open_traces_and_acks_their_frames() {
    let sidecar = Sidecar::start(&[("SLUICE_MULTILINE_WAIT", "10m")]);
    let file = frames_file(
        "stop",
        &json!([{"tag": "app", "chunk": "s", "lines": [
            ["stdout", GO[0]], ["stdout", GO[1]], ["stdout", GO[2]], ["stdout", GO[3]]]}]),
    );
    let tcp = sidecar.tcp.clone();
    let client = std::thread::spawn(move || client_with("frames", &tcp, &[&file.arg()]));
    wait_until("the trace read", Duration::from_millis(20), || {
        let (_, s) = scrape(&sidecar.admin);
        s.get("sluice_forward_events_total").copied() == Some(4.0)
    });
    let (status, rest) = sidecar.stop();
    assert!(status.success());
    assert_eq!(client.join().expect("client"), [r#"{"ack": "s"}"#]);
    assert_eq!(logs_by_tag(&rest, "app"), [GO[..4].join("\n")]);
}
