//! `sluice check-config` and `sluice run --config`.

use std::process::Command;

use crate::support::{client, Sidecar, TempPath};

fn config_file(name: &str, text: &str) -> TempPath {
    TempPath::write(
        &format!("sluice-e2e-{}-{name}.toml", std::process::id()),
        text,
    )
}

fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check-config")
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .expect("sluice runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_a_good_file_and_explains_every_error() {
    let good = config_file(
        "good",
        "[forward]\nunix_path = \"/var/run/fluent.sock\"\n[redact]\nallow = [\"page\"]\n",
    );
    let (code, stdout, stderr) = check_config(&good, &[]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(stdout, format!("{}: ok\n", good.display()));

    let bad = config_file(
        "bad",
        "[forward]\nmax_conections = 5\n[cloudwatch]\nretention_days = 10\n[output]\ntype = \"s3\"\n",
    );
    let (code, stdout, stderr) = check_config(&bad, &[("SLUICE_CLOUDWATCH_AUTO_CREATE", "maybe")]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    let p = bad.display();
    assert_eq!(
        stderr,
        format!(
            "{p}: forward.max_conections: unknown key; [forward] takes listen, unix_path, unix_mode, shared_key, max_connections, idle_timeout\n\
             {p}: output.type: \"s3\" is not one of stdout, file, cloudwatch\n\
             {p}: SLUICE_CLOUDWATCH_AUTO_CREATE: expected true or false, got \"maybe\"\n\
             {p}: cloudwatch.retention_days: 10 is not a retention CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653\n\
             {p}: 4 error(s)\n"
        )
    );
}

/// A variable that is not UTF-8, as any container may have, is no reason
/// to fail; a `SLUICE_*` one is a wrong value, named.
#[test]
fn variables_that_are_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let good = config_file("utf8", "[forward]\nunix_path = \"/var/run/fluent.sock\"\n");
    let run = |name: &[u8], value: &[u8]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("check-config")
            .arg(&*good)
            .env(OsStr::from_bytes(name), OsStr::from_bytes(value))
            .output()
            .expect("sluice runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(b"APP_JUNK", b"caf\xe9"), (0, String::new()));
    let (code, stderr) = run(b"SLUICE_CLOUDWATCH_AUTO_CREATE", b"tru\xe9");
    assert_eq!(code, 1);
    assert!(
        stderr
            .contains("SLUICE_CLOUDWATCH_AUTO_CREATE: expected true or false, got \"tru\u{fffd}\""),
        "{stderr}"
    );
}

#[test]
fn run_with_a_config_file() {
    let file = config_file(
        "run",
        r#"
        [envoy]
        containers = ["envoy"]
        formats = ["%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER%"]
        routes = ["/orders/{order}"]
        [redact]
        allow = ["page"]
        "#,
    );
    let path = file.display().to_string();
    let sidecar = Sidecar::start_with(&["--config", &path], &[]);
    assert_eq!(
        client("containers", &sidecar.tcp),
        [r#"{"ack": {"ack": "end"}}"#]
    );
    // Sorted: an application line may wait for the next line of its
    // stream (it could introduce a stack trace), so streams interleave
    // differently; within a stream the order is kept.
    let mut lines = sidecar.lines(4);
    lines.sort();
    let mut expected = vec![
        r#"{"kind":"access","timestamp":1460751420310,"tag":"t","container_name":"envoy","start_time":"2016-04-15T20:17:00.310Z","method":"POST","path":"/api/v1/locations?page=2&token=REDACTED","protocol":"HTTP/2","response_code":204,"bytes_received":154,"bytes_sent":0,"duration":226,"upstream_service_time":100,"forwarded_for":"10.0.35.28","user_agent":"nsq2http","request_id":"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2","authority":"locations","upstream_host":"tcp://10.0.2.1:80","route":"POST /api/v1/locations"}"#,
        // Not an Envoy container: an application line, still redacted.
        r#"{"kind":"app","timestamp":1700000000000,"tag":"t","container_name":"app","log":"[2016-04-15T20:17:00.310Z] \"POST /api/v1/locations?page=2&token=REDACTED HTTP/2\" 204 - 154 0 226 100 \"10.0.35.28\" \"nsq2http\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \"tcp://10.0.2.1:80\""}"#,
        r#"{"kind":"access","timestamp":1700000000000,"tag":"t","container_name":"envoy","method":"GET","path":"/orders/7?token=REDACTED","response_code":200,"upstream_cluster":"orders-v2","route":"GET /orders/{order}"}"#,
        r#"{"kind":"app","timestamp":1700000000000,"tag":"t","log":"done"}"#,
    ];
    expected.sort();
    assert_eq!(lines, expected);
}

#[test]
fn run_refuses_a_bad_config() {
    let bad = config_file("run-bad", "[redact]\nmode = \"hide\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .expect("sluice runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#""key":"redact.mode""#), "{stderr}");
}

#[test]
fn run_without_an_aws_region_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .env("SLUICE_OUTPUT_TYPE", "cloudwatch")
        .env("SLUICE_FORWARD_LISTEN", "127.0.0.1:0")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("sluice runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "no AWS region: set cloudwatch.region (SLUICE_CLOUDWATCH_REGION) or AWS_REGION"
        ),
        "{stderr}"
    );
}

#[test]
fn file_output_writes_one_ndjson_file_per_stream() {
    let dir = TempPath::unique_dir("files");
    let dir_text = dir.arg();
    let sidecar = Sidecar::start(&[
        ("SLUICE_OUTPUT_TYPE", "file"),
        ("SLUICE_FILE_DIR", &dir_text),
        ("SLUICE_CLOUDWATCH_LOG_GROUP", "/ecs/{cluster}"),
        // Every metadata field, configured in (by default there is none).
        (
            "SLUICE_CLOUDWATCH_METADATA",
            "kind,timestamp,tag,start_time,container_name,container_id,source,ecs_cluster,ecs_task_arn,ecs_task_definition",
        ),
    ]);
    assert_eq!(
        client("containers", &sidecar.tcp),
        [r#"{"ack": {"ack": "end"}}"#]
    );
    let (status, _) = sidecar.stop();
    assert!(status.success());
    let read = |group: &str, stream: &str| {
        std::fs::read_to_string(dir.join(group).join(format!("{stream}.ndjson")))
            .unwrap_or_else(|e| panic!("{group}/{stream}: {e}"))
    };
    // No task metadata in these records: task_id is "unknown", cluster "default".
    // Every container may log access records by default: both lines.
    let access = read("%2Fecs%2Fdefault", "unknown%2Faccess");
    let containers: Vec<&str> = access
        .lines()
        .map(|l| {
            if l.contains(r#""container_name":"envoy""#) {
                "envoy"
            } else {
                "app"
            }
        })
        .collect();
    assert_eq!(containers, ["envoy", "app"], "{access}");
    assert!(access
        .lines()
        .all(|l| l.starts_with(r#"{"kind":"access","timestamp":1460751420310"#)));
    let envoy_app = read("%2Fecs%2Fdefault", "unknown%2Fenvoy");
    assert_eq!(
        envoy_app,
        "{\"kind\":\"app\",\"timestamp\":1700000000000,\"tag\":\"t\",\"container_name\":\"envoy\",\"log\":\"GET /orders/7?token=REDACTED 200 orders-v2\"}\n"
    );
    assert!(!dir
        .join("%2Fecs%2Fdefault")
        .join("unknown%2Fapp.ndjson")
        .exists());
    assert_eq!(
        read("%2Fecs%2Fdefault", "unknown%2Funknown"),
        "{\"kind\":\"app\",\"timestamp\":1700000000000,\"tag\":\"t\",\"log\":\"done\"}\n"
    );
}

#[test]
fn healthcheck_reports_whether_the_listener_accepts() {
    let sidecar = Sidecar::start(&[]);
    let status = |listen: &str| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("healthcheck")
            .env("SLUICE_FORWARD_LISTEN", listen)
            .output()
            .expect("sluice runs")
            .status
            .code()
    };
    assert_eq!(status(&sidecar.tcp), Some(0));
    let free = format!("127.0.0.1:{}", crate::support::free_port());
    assert_eq!(status(&free), Some(1));
}

/// The ```toml blocks of a Markdown file.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_example_config_passes_check_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root.join("examples")).expect("examples/") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            checked.push(path);
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = toml_blocks(&readme);
    assert!(!blocks.is_empty(), "the README shows a configuration");
    let readme_files: Vec<TempPath> = blocks
        .iter()
        .enumerate()
        .map(|(i, block)| config_file(&format!("readme-{i}"), block))
        .collect();
    checked.extend(readme_files.iter().map(|f| f.to_path_buf()));
    assert!(checked.len() >= 2, "{checked:?}");
    for path in &checked {
        let (code, stdout, stderr) = check_config(path, &[]);
        assert_eq!(
            (code, stdout, stderr),
            (0, format!("{}: ok\n", path.display()), String::new()),
        );
    }
}

#[test]
fn run_exits_2_on_a_wrong_type_before_it_listens() {
    let port = crate::support::free_port();
    let file = config_file("run-wrong-type", "[forward]\nshared_key = 123456\n");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config"])
        .arg(&file)
        .env("SLUICE_FORWARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_STATS_MAX_ROUTES", "lots")
        .output()
        .expect("sluice runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let keys: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split(r#""key":""#).nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        keys,
        ["forward.shared_key", "SLUICE_STATS_MAX_ROUTES"],
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}

/// Starts `sluice run` with `FLB_LOG_LEVEL` set to `level`, stops it once it
/// listens, and returns its exit code and everything it logged.
fn run_with_log_level(level: &str) -> (Option<i32>, String) {
    let port = crate::support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .env("FLB_LOG_LEVEL", level)
        .env("SLUICE_FORWARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_FORWARD_UNIX_PATH", "")
        .env("SLUICE_ADMIN_LISTEN", "")
        .env("SLUICE_SHUTDOWN_DRAIN", "0s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice starts");
    crate::support::wait_until(
        "sluice listens or exits",
        std::time::Duration::from_millis(20),
        || {
            matches!(child.try_wait(), Ok(Some(_)))
                || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        },
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("sluice exits");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// FLB_LOG_LEVEL, which AWS documents for FireLens routers, sets Sluice's
/// own level; a value that is not a level stops it, naming the variable.
#[test]
fn flb_log_level_sets_sluices_own() {
    let (code, logs) = run_with_log_level("info");
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains(r#""message":"stopped""#), "{logs}");
    let (code, logs) = run_with_log_level("Warn");
    assert_eq!(code, Some(0), "{logs}");
    assert!(!logs.contains(r#""level":"INFO""#), "{logs}");
    let (code, logs) = run_with_log_level("loud");
    assert_eq!(code, Some(2), "{logs}");
    assert!(
        logs.contains(r#""message":"\"loud\" is not a log level: off, error, warn, info, debug or trace","key":"FLB_LOG_LEVEL""#),
        "{logs}"
    );
}
