//! `sluice parse` as a user runs it: lines on stdin, JSON lines on stdout.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `sluice parse ARGS` with `input` on stdin; returns (status, stdout, stderr).
fn sluice_parse(args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("parse")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // Write from another thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("sluice runs");
    writer
        .join()
        .expect("writer thread")
        .expect("stdin accepts input");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    )
}

fn check(args: &[&str], cases: &[(&str, &str)]) {
    let input: String = cases.iter().map(|(line, _)| format!("{line}\n")).collect();
    let (status, stdout, stderr) = sluice_parse(args, input.as_bytes());
    assert_eq!(status, 0, "stderr: {stderr}");
    let got: Vec<&str> = stdout.lines().collect();
    let want: Vec<&str> = cases.iter().map(|(_, json)| *json).collect();
    assert_eq!(got.len(), want.len(), "one output line per input line");
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "line {}: {}", i + 1, cases[i].0);
    }
}

#[test]
fn every_sample_from_the_specs() {
    check(
        &[],
        &[
            (
                r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#,
                r#"{"kind":"access","start_time":"2016-04-15T20:17:00.310Z","method":"POST","path":"/api/v1/locations","protocol":"HTTP/2","response_code":204,"bytes_received":154,"bytes_sent":0,"duration":226,"upstream_service_time":100,"forwarded_for":"10.0.35.28","user_agent":"nsq2http","request_id":"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2","authority":"locations","upstream_host":"tcp://10.0.2.1:80","route":"POST /api/v1/locations"}"#,
            ),
            (
                r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 UF 1 2 3 - "x.x.x.x" "user-agent-set" "id" "host" "-""#,
                r#"{"kind":"access","start_time":"1999-01-01T00:00:00.000Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":0,"response_flags":"UF","bytes_received":1,"bytes_sent":2,"duration":3,"forwarded_for":"x.x.x.x","user_agent":"user-agent-set","request_id":"id","authority":"host","route":"GET /"}"#,
            ),
            (
                r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 DC 1 2 3 - "-" "-" "-" "-" "10.0.0.5:1234""#,
                r#"{"kind":"access","start_time":"1999-01-01T00:00:00.000Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":0,"response_flags":"DC","bytes_received":1,"bytes_sent":2,"duration":3,"upstream_host":"10.0.0.5:1234","route":"GET /"}"#,
            ),
            (
                r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 - 1 2 3 999 "-" "-" "-" "-" "-""#,
                r#"{"kind":"access","start_time":"1999-01-01T00:00:00.000Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":0,"bytes_received":1,"bytes_sent":2,"duration":3,"upstream_service_time":999,"route":"GET /"}"#,
            ),
            (
                r#"[1999-01-01T00:00:00.000Z] "GET / HTTP/1.1" 0 - 1 2 3 - "-" "-" "-" "-" "-""#,
                r#"{"kind":"access","start_time":"1999-01-01T00:00:00.000Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":0,"bytes_received":1,"bytes_sent":2,"duration":3,"route":"GET /"}"#,
            ),
            (
                r#"[2018-08-14T23:08:23.803Z] "GET /server_info HTTP/1.1" 200 - 0 92 6 - "192.88.34.220" "curl/7.38.0" "-" "localhost:10000" "-""#,
                r#"{"kind":"access","start_time":"2018-08-14T23:08:23.803Z","method":"GET","path":"/server_info","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":92,"duration":6,"forwarded_for":"192.88.34.220","user_agent":"curl/7.38.0","authority":"localhost:10000","route":"GET /server_info"}"#,
            ),
            (
                r#"[2018-08-14T23:08:23.803Z] "GET / HTTP/1.1" 200 - 0 4521 0 - "192.88.34.220" "USER_AGENT_I_WANT_YOU_TO_SEE" "AJ" "WAS" "HERE" "-" "localhost:10000" "-""#,
                r#"{"kind":"access","start_time":"2018-08-14T23:08:23.803Z","method":"GET","path":"/","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":4521,"duration":0,"forwarded_for":"192.88.34.220","user_agent":"USER_AGENT_I_WANT_YOU_TO_SEE\" \"AJ\" \"WAS\" \"HERE","authority":"localhost:10000","route":"GET /"}"#,
            ),
            (
                r#"[2024-07-20T07:05:54.173Z] "GET /gateway-timeout?delayMs=5000 HTTP/1.1" 504 UT response_timeout 0 24 4497 - "-" "curl/8.4.0" "6d67d674-2122-4a2d-b172-0be70c674371" "localhost:8000" "172.27.0.2:8080""#,
                r#"{"kind":"access","start_time":"2024-07-20T07:05:54.173Z","method":"GET","path":"/gateway-timeout?delayMs=REDACTED","protocol":"HTTP/1.1","response_code":504,"response_flags":"UT","response_code_details":"response_timeout","bytes_received":0,"bytes_sent":24,"duration":4497,"user_agent":"curl/8.4.0","request_id":"6d67d674-2122-4a2d-b172-0be70c674371","authority":"localhost:8000","upstream_host":"172.27.0.2:8080","route":"GET /gateway-timeout"}"#,
            ),
            (
                r#"[2024-07-20T07:06:24.729Z] "GET /no-healthy-upstream HTTP/1.1" 503 UH no_healthy_upstream 0 19 0 - "-" "curl/8.4.0" "2f22e5c6-2387-49b8-96c4-7b3a1678dbb0" "localhost:8000" "-""#,
                r#"{"kind":"access","start_time":"2024-07-20T07:06:24.729Z","method":"GET","path":"/no-healthy-upstream","protocol":"HTTP/1.1","response_code":503,"response_flags":"UH","response_code_details":"no_healthy_upstream","bytes_received":0,"bytes_sent":19,"duration":0,"user_agent":"curl/8.4.0","request_id":"2f22e5c6-2387-49b8-96c4-7b3a1678dbb0","authority":"localhost:8000","route":"GET /no-healthy-upstream"}"#,
            ),
            (
                r#"[2024-07-20T07:09:48.470Z] "GET /upstream-connection-failure HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111} 0 145 0 - "-" "curl/8.4.0" "44898dba-8d8e-48f4-93f7-23e4b4c592c0" "localhost:8000" "172.28.0.2:801""#,
                r#"{"kind":"access","start_time":"2024-07-20T07:09:48.470Z","method":"GET","path":"/upstream-connection-failure","protocol":"HTTP/1.1","response_code":503,"response_flags":"UF","response_code_details":"upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}","bytes_received":0,"bytes_sent":145,"duration":0,"user_agent":"curl/8.4.0","request_id":"44898dba-8d8e-48f4-93f7-23e4b4c592c0","authority":"localhost:8000","upstream_host":"172.28.0.2:801","route":"GET /upstream-connection-failure"}"#,
            ),
            (
                r#"[2024-07-20T07:23:58.586Z] "GET /upstream-connection-failure/after-response HTTP/1.1" 200 UPE upstream_reset_after_response_started{protocol_error} 0 19 1006 0 "-" "curl/8.4.0" "84ef2354-e85c-4e90-bc6e-bb81d5dc70e8" "localhost:8000" "192.168.5.2:8080""#,
                r#"{"kind":"access","start_time":"2024-07-20T07:23:58.586Z","method":"GET","path":"/upstream-connection-failure/after-response","protocol":"HTTP/1.1","response_code":200,"response_flags":"UPE","response_code_details":"upstream_reset_after_response_started{protocol_error}","bytes_received":0,"bytes_sent":19,"duration":1006,"upstream_service_time":0,"user_agent":"curl/8.4.0","request_id":"84ef2354-e85c-4e90-bc6e-bb81d5dc70e8","authority":"localhost:8000","upstream_host":"192.168.5.2:8080","route":"GET /upstream-connection-failure/after-response"}"#,
            ),
            (
                r#"[2024-07-20T07:32:21.519Z] "GET /upstream-service-overflow?delayMs=5000 HTTP/1.1" 503 UO upstream_reset_before_response_started{overflow} 0 81 0 - "-" "curl/8.4.0" "c414b70a-7c85-4f78-9c35-2ce2b9131aa3" "localhost:8000" "172.31.0.3:8080""#,
                r#"{"kind":"access","start_time":"2024-07-20T07:32:21.519Z","method":"GET","path":"/upstream-service-overflow?delayMs=REDACTED","protocol":"HTTP/1.1","response_code":503,"response_flags":"UO","response_code_details":"upstream_reset_before_response_started{overflow}","bytes_received":0,"bytes_sent":81,"duration":0,"user_agent":"curl/8.4.0","request_id":"c414b70a-7c85-4f78-9c35-2ce2b9131aa3","authority":"localhost:8000","upstream_host":"172.31.0.3:8080","route":"GET /upstream-service-overflow"}"#,
            ),
            (
                r#"[2024-07-20T07:38:15.899Z] "GET /no-upstream-cluster HTTP/1.1" 503 NC cluster_not_found 0 0 0 - "-" "curl/8.4.0" "8a23b89d-1dcd-4f5c-ae55-58e79d74d8ca" "localhost:8000" "-""#,
                r#"{"kind":"access","start_time":"2024-07-20T07:38:15.899Z","method":"GET","path":"/no-upstream-cluster","protocol":"HTTP/1.1","response_code":503,"response_flags":"NC","response_code_details":"cluster_not_found","bytes_received":0,"bytes_sent":0,"duration":0,"user_agent":"curl/8.4.0","request_id":"8a23b89d-1dcd-4f5c-ae55-58e79d74d8ca","authority":"localhost:8000","route":"GET /no-upstream-cluster"}"#,
            ),
            (
                r#"[2024-07-20T07:45:34.828Z] "GET /upstream-retry-exceeds?statusCode=500 HTTP/1.1" 500 URX via_upstream 0 680 59 59 "-" "curl/8.4.0" "0df38f52-08eb-4b67-a097-ece7427c7238" "localhost:8000" "192.168.48.2:8080""#,
                r#"{"kind":"access","start_time":"2024-07-20T07:45:34.828Z","method":"GET","path":"/upstream-retry-exceeds?statusCode=REDACTED","protocol":"HTTP/1.1","response_code":500,"response_flags":"URX","response_code_details":"via_upstream","bytes_received":0,"bytes_sent":680,"duration":59,"upstream_service_time":59,"user_agent":"curl/8.4.0","request_id":"0df38f52-08eb-4b67-a097-ece7427c7238","authority":"localhost:8000","upstream_host":"192.168.48.2:8080","route":"GET /upstream-retry-exceeds"}"#,
            ),
            (
                r#"[2024-07-21T08:32:59.547Z] "GET /ws HTTP/1.1" 101 DC downstream_remote_disconnect 61 105 13342 - "-" "-" "e5248829-b318-443a-a763-e2460530f070" "localhost:8000" "192.168.5.2:8080""#,
                r#"{"kind":"access","start_time":"2024-07-21T08:32:59.547Z","method":"GET","path":"/ws","protocol":"HTTP/1.1","response_code":101,"response_flags":"DC","response_code_details":"downstream_remote_disconnect","bytes_received":61,"bytes_sent":105,"duration":13342,"request_id":"e5248829-b318-443a-a763-e2460530f070","authority":"localhost:8000","upstream_host":"192.168.5.2:8080","route":"GET /ws"}"#,
            ),
            (
                r#"[2024-07-21T09:11:33.481Z] "GET /ws HTTP/1.1" 101 SI stream_idle_timeout 100 154 413322 - "-" "-" "8a458ce2-bb8d-4e80-a305-f323bbab338f" "localhost:8000" "192.168.5.2:8080""#,
                r#"{"kind":"access","start_time":"2024-07-21T09:11:33.481Z","method":"GET","path":"/ws","protocol":"HTTP/1.1","response_code":101,"response_flags":"SI","response_code_details":"stream_idle_timeout","bytes_received":100,"bytes_sent":154,"duration":413322,"request_id":"8a458ce2-bb8d-4e80-a305-f323bbab338f","authority":"localhost:8000","upstream_host":"192.168.5.2:8080","route":"GET /ws"}"#,
            ),
        ],
    );
}

#[test]
fn app_lines_and_bad_bytes_never_stop_the_stream() {
    let mut input = Vec::new();
    input.extend_from_slice(
        b"[2025-11-04 06:49:07.518][1][info][main] starting main dispatch loop\n",
    );
    input.extend_from_slice(b"caf\xe9 \xff\xfe au lait\r\n");
    input.extend_from_slice(b"\n");
    input.extend_from_slice(b"{\"level\":\"info\",\"msg\":\"GET /login?password=hunter2\"}\n");
    input.extend_from_slice(b"no trailing newline");
    let (status, stdout, stderr) = sluice_parse(&[], &input);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        stdout,
        concat!(
            r#"{"kind":"app","log":"[2025-11-04 06:49:07.518][1][info][main] starting main dispatch loop"}"#,
            "\n",
            "{\"kind\":\"app\",\"log\":\"caf\u{fffd} \u{fffd}\u{fffd} au lait\"}\n",
            r#"{"kind":"app","log":""}"#,
            "\n",
            r#"{"kind":"app","log":"{\"level\":\"info\",\"msg\":\"GET /login?password=REDACTED\"}"}"#,
            "\n",
            r#"{"kind":"app","log":"no trailing newline"}"#,
            "\n",
        )
    );
}

#[test]
fn user_format_string_redaction_modes_and_routes() {
    let format = "%START_TIME% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% \"%REQ(REFERER)%\"\n";
    let line = r#"2025-11-04T06:49:07.518Z GET /users/alice/orders?page=2&token=t0k 200 users-v1 "https://shop.example/cart?sid=abc""#;
    check(
        &[
            "--format",
            format,
            "--allow",
            "PAGE",
            "--route",
            "/users/{name}/orders",
        ],
        &[(
            line,
            r#"{"kind":"access","start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/users/alice/orders?page=2&token=REDACTED","response_code":200,"upstream_cluster":"users-v1","req_referer":"https://shop.example/cart?sid=REDACTED","route":"GET /users/{name}/orders"}"#,
        )],
    );
    check(
        &["--format", format, "--redact", "drop"],
        &[(
            line,
            r#"{"kind":"access","start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/users/alice/orders","response_code":200,"upstream_cluster":"users-v1","req_referer":"https://shop.example/cart","route":"GET /users/alice/orders"}"#,
        )],
    );
    check(
        &["--format", format, "--redact", "keep"],
        &[(
            line,
            r#"{"kind":"access","start_time":"2025-11-04T06:49:07.518Z","method":"GET","path":"/users/alice/orders?page=2&token=t0k","response_code":200,"upstream_cluster":"users-v1","req_referer":"https://shop.example/cart?sid=abc","route":"GET /users/alice/orders"}"#,
        )],
    );
    // A named built-in is accepted too.
    check(
        &["--format", "sc-tcp"],
        &[(
            "[2025-11-04T06:49:07.518Z] 10.0.1.20:51234 51234 1024 2048 3500 - 42",
            r#"{"kind":"access","start_time":"2025-11-04T06:49:07.518Z","bytes_received":1024,"bytes_sent":2048,"duration":3500,"downstream_remote_address":"10.0.1.20:51234","downstream_remote_port":51234,"connection_id":"42","route":"TCP"}"#,
        )],
    );
}

#[test]
fn bad_arguments_are_explained() {
    let (status, stdout, stderr) = sluice_parse(&["--format", "[%START_TIME] %PROTOCOL%"], b"");
    assert_eq!(status, 2);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "sluice parse: --format: format string is invalid at column 13: expected '%' to close the operator\n[%START_TIME] %PROTOCOL%\n            ^\n"
    );
    let (status, _, stderr) = sluice_parse(&["--format", "nginx"], b"");
    assert_eq!(status, 2);
    assert_eq!(
        stderr,
        "sluice parse: --format \"nginx\" is neither a built-in format (envoy, sc-http, envoy-details, sc-http2, sc-grpc, sc-tcp) nor an Envoy format string\n"
    );
    let (status, _, stderr) = sluice_parse(&["--route", "/a/{"], b"");
    assert_eq!(status, 2);
    assert!(
        stderr.starts_with("sluice parse: --route: route template is invalid at column 4"),
        "{stderr}"
    );
    let (status, _, stderr) = sluice_parse(&["--redact", "hide"], b"");
    assert_eq!(status, 2);
    assert!(
        stderr.contains("unknown redaction mode \"hide\""),
        "{stderr}"
    );
}

#[test]
fn a_megabyte_line_is_one_object() {
    let big = "x".repeat(1 << 20);
    let input = format!("{big}\nafter\n");
    let (status, stdout, _) = sluice_parse(&[], input.as_bytes());
    assert_eq!(status, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], format!(r#"{{"kind":"app","log":"{big}"}}"#));
    assert_eq!(lines[1], r#"{"kind":"app","log":"after"}"#);
}
