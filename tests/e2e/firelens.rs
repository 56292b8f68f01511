//! Sluice as the FireLens log router ECS starts: the Fluent Bit
//! configuration the agent generates (ecs_agent.py renders it as the
//! agent's template does), task metadata v4 and container credentials from
//! a loopback stand-in, records sent as Docker's fluentd driver sends them,
//! and the results read back from moto.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::support::{
    docker_send, render_firelens_config, scrape, wait_until, Addresses, CloudWatchDump, EcsAgent,
    Moto, Sidecar, StoredEvent, TempPath,
};

const TASK_ID: &str = "5a0a7b1c9d8e4f00a1b2c3d4e5f60718";
const APP_ID: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const ENVOY_ID: &str = "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2";
const APP_DOCKER_NAME: &str = "/ecs-orders-7-app-d0c8b4a2e6f1a3c5b700";
const ENVOY_DOCKER_NAME: &str = "/ecs-orders-7-envoy-9a8bf0e1d2c3b4a59600";
const TOKEN: &str = "agent-token-1";

fn task_arn() -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/prod/{TASK_ID}")
}

/// The `/task` answer, as on Fargate: the cluster is an ARN.
fn task_metadata() -> Value {
    json!({
        "Cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        "TaskARN": task_arn(),
        "Family": "orders",
        "Revision": "7",
        "LaunchType": "FARGATE",
        "Containers": [
            {"DockerId": APP_ID, "Name": "app", "DockerName": &APP_DOCKER_NAME[1..]},
            {"DockerId": ENVOY_ID, "Name": "envoy", "DockerName": &ENVOY_DOCKER_NAME[1..]},
            {"DockerId": "f0", "Name": "log_router", "DockerName": "ecs-orders-7-logrouter-aa"}
        ]
    })
}

fn tag(container: &str) -> String {
    format!("{container}-firelens-{TASK_ID}")
}

/// No static keys, no region, no profile: only what ECS gives.
const REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/// The environment ECS gives the router, pointed at the stand-in.
fn ecs_env(agent: &EcsAgent, conf: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("SLUICE_FIRELENS_CONFIG".into(), conf.display().to_string()),
        ("ECS_CONTAINER_METADATA_URI_V4".into(), agent.metadata_uri()),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
            agent.credentials_uri(),
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN".into(), TOKEN.into()),
        ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

fn start(addresses: &Addresses, env: &[(String, String)]) -> Sidecar {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Sidecar::start_at(addresses, &[], &[], &env, REMOVED)
}

/// A task whose `app` container sends to moto's `/ecs/app`, with `extra`
/// included as a task definition's `config-file-value` includes it, and
/// its log router running.
fn start_app_task(
    moto: &Moto,
    agent: &EcsAgent,
    addresses: &Addresses,
    extra: &TempPath,
) -> Sidecar {
    start_app_task_with_env(moto, agent, addresses, extra, &[])
}

/// [`start_app_task`], with more variables in the router's environment.
fn start_app_task_with_env(
    moto: &Moto,
    agent: &EcsAgent,
    addresses: &Addresses,
    extra: &TempPath,
    more_env: &[(&str, String)],
) -> Sidecar {
    let mut spec = spec(
        addresses,
        crate::support::free_port(),
        json!({"app": moto_output(moto, "/ecs/app")}),
    );
    spec["include"] = json!([extra.arg()]);
    let conf = render_firelens_config(&spec);
    let mut env = ecs_env(agent, &conf);
    env.extend(more_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    start(addresses, &env)
}

/// The peers of one task: moto, the ECS agent stand-in, and the router's
/// addresses.
struct Peers {
    moto: Moto,
    agent: EcsAgent,
    addresses: Addresses,
}

impl Peers {
    fn start() -> Peers {
        Peers {
            moto: Moto::start(),
            agent: EcsAgent::start(&task_metadata(), 0.0, TOKEN),
            addresses: Addresses::pick(),
        }
    }
}

/// A file a task definition includes by `config-file-value`.
fn extra_conf(text: &str) -> TempPath {
    crate::support::TempPath::unique_with("extra", "conf", text)
}

/// Sends `lines` (source, line) as the `app` container's Docker driver does.
fn send_app(addresses: &Addresses, lines: &[(&str, &str)]) {
    docker_send(&addresses.unix, &tag("app"), APP_ID, APP_DOCKER_NAME, lines);
}

/// Waits until CloudWatch holds what `ready` asks for, then stops the
/// sidecar, which must exit cleanly; what CloudWatch held.
fn stop_once_delivered(
    sidecar: Sidecar,
    moto: &Moto,
    what: &str,
    ready: impl Fn(&CloudWatchDump) -> bool,
) -> CloudWatchDump {
    let dump = moto.wait_for_dump(what, ready);
    let (status, _) = sidecar.stop();
    assert!(status.success());
    dump
}

/// The agent's rendering input for a task with `containers`' log options.
fn spec(addresses: &Addresses, health_port: u16, containers: Value) -> Value {
    let port: u16 = addresses
        .tcp
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    json!({
        "network_mode": "awsvpc",
        "socket": addresses.unix,
        "port": port,
        "health_port": health_port,
        "mem_buf_limit": 25,
        "cluster": "prod",
        "task_arn": task_arn(),
        "task_definition": "orders:7",
        "containers": containers,
    })
}

/// A task definition's `cloudwatch_logs` options for `group`, sending to
/// moto: the stream is `from-` and the tag, the group created.
fn moto_output(moto: &Moto, group: &str) -> Value {
    json!({
        "Name": "cloudwatch_logs",
        "region": "us-east-1",
        "endpoint": moto.endpoint(),
        "log_group_name": group,
        "log_stream_prefix": "from-",
        "auto_create_group": "true",
    })
}

fn object(message: &str) -> Map<String, Value> {
    match serde_json::from_str(message) {
        Ok(Value::Object(m)) => m,
        _ => panic!("not a JSON object: {message}"),
    }
}

fn in_stream<'a>(events: &'a [StoredEvent], group: &str, stream: &str) -> Vec<&'a StoredEvent> {
    events
        .iter()
        .filter(|e| e.group == group && e.stream == stream)
        .collect()
}

/// The events of the `app` container's stream in `/ecs/app`, where
/// `moto_output` sends them.
fn app_events(dump: &CloudWatchDump) -> Vec<&StoredEvent> {
    in_stream(&dump.events, "/ecs/app", &format!("from-{}", tag("app")))
}

/// The `log` of each of [`app_events`], in order.
fn app_logs(dump: &CloudWatchDump) -> Vec<String> {
    app_events(dump)
        .iter()
        .map(|e| {
            object(&e.message)["log"]
                .as_str()
                .expect("a log")
                .to_string()
        })
        .collect()
}

#[test]
fn an_ecs_task_as_the_agent_generates_it() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let health_port = crate::support::free_port();
    let conf = render_firelens_config(&spec(
        &addresses,
        health_port,
        json!({
            "app": {
                "Name": "cloudwatch_logs",
                "region": "us-east-1",
                "endpoint": moto.endpoint(),
                "log_group_name": "/ecs/orders/app",
                // A secret option: the agent writes ${NAME_i} and sets the
                // variable on the router.
                "log_stream_prefix": "${APP_PREFIX_0}",
                "auto_create_group": "true",
                "log_retention_days": "14",
                "exclude-pattern": "^DEBUG",
            },
            "envoy": {
                "Name": "cloudwatch_logs",
                "region": "us-east-1",
                "endpoint": moto.endpoint(),
                "log_group_name": "/ecs/envoy-fallback",
                "log_group_template": "/ecs/$ecs_cluster/envoy",
                "log_stream_name": "envoy-stream",
                "log_stream_template": "$no_such_key",
                "auto_create_group": "true",
                "workers": "2",
            },
        }),
    ));
    let text = std::fs::read_to_string(&conf).expect("generated");
    // The agent's shape: an empty line first, sorted keys.
    assert!(
        text.starts_with("\n[INPUT]\n    Name forward\n    Mem_Buf_Limit 25MB\n    unix_path "),
        "{text}"
    );
    let mut env = ecs_env(&agent, &conf);
    env.push(("APP_PREFIX_0".into(), "app/".into()));
    let sidecar = start(&addresses, &env);

    // The health check AWS documented for years: connect, write, close.
    {
        use std::io::Write;
        let mut hc = std::net::TcpStream::connect(("127.0.0.1", health_port))
            .expect("the health-check input accepts");
        hc.write_all(b"{\"health\": \"check\"}\n").expect("written");
    }

    send_app(
        &addresses,
        &[
            ("stdout", "GET /orders?token=t0psecret 200 handled"),
            ("stdout", "DEBUG cache warm"),
            ("stderr", "payment failed for order 7"),
        ],
    );
    let access = "[{now}] \"POST /api/v1/locations?token=s3cret&page=2 HTTP/2\" 204 - 154 0 226 100 \"10.0.35.28\" \"nsq2http\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \"10.0.2.1:80\"";
    docker_send(
        &addresses.unix,
        &tag("envoy"),
        ENVOY_ID,
        ENVOY_DOCKER_NAME,
        &[
            ("stdout", access),
            (
                "stderr",
                "[2026-11-26 10:00:00.000][1][info][main] starting main dispatch loop",
            ),
        ],
    );
    wait_until("records read", Duration::from_millis(50), || {
        let (_, samples) = scrape(&sidecar.admin);
        samples
            .get("sluice_forward_events_total")
            .copied()
            .unwrap_or(0.0)
            >= 5.0
    });
    let (_, samples) = scrape(&sidecar.admin);
    assert_eq!(samples.get("sluice_firelens_filtered_total"), Some(&1.0));
    let (status, _) = sidecar.stop();
    assert!(status.success());

    let dump = moto.wait_for_dump("every event in CloudWatch", |d| d.events.len() >= 5);
    assert_eq!(dump.groups.get("/ecs/orders/app"), Some(&Some(14)));
    assert_eq!(dump.groups.get("/ecs/prod/envoy"), Some(&None));
    assert!(
        !dump.groups.contains_key("/ecs/envoy-fallback"),
        "{:?}",
        dump.groups
    );

    // The application's lines: Fluent Bit's record shape, redacted, with
    // the metadata record_modifier added; the DEBUG line excluded.
    let app_stream = format!("app/{}", tag("app"));
    // Sorted by source: a line may wait for its stream's next line (it
    // could introduce a stack trace), so stdout and stderr interleave.
    let mut app: Vec<Map<String, Value>> = in_stream(&dump.events, "/ecs/orders/app", &app_stream)
        .iter()
        .map(|e| object(&e.message))
        .collect();
    app.sort_by_key(|r| r["source"].as_str().unwrap_or_default().to_string());
    let metadata = |source: &str, log: &str, id: &str, name: &str| {
        object(
            &json!({
                "container_id": id,
                "container_name": name,
                "ecs_cluster": "prod",
                "ecs_task_arn": task_arn(),
                "ecs_task_definition": "orders:7",
                "log": log,
                "source": source,
            })
            .to_string(),
        )
    };
    assert_eq!(
        app,
        [
            metadata(
                "stderr",
                "payment failed for order 7",
                APP_ID,
                APP_DOCKER_NAME
            ),
            metadata(
                "stdout",
                "GET /orders?token=REDACTED 200 handled",
                APP_ID,
                APP_DOCKER_NAME
            ),
        ]
    );

    // Envoy's lines: the access record parsed and redacted, with the same
    // metadata keys; its own log line as a record.
    let envoy = in_stream(&dump.events, "/ecs/prod/envoy", "envoy-stream");
    assert_eq!(envoy.len(), 2, "{envoy:#?}");
    let mut record = object(&envoy[0].message);
    let start_time = record.remove("start_time").expect("start_time");
    assert!(start_time.as_str().is_some_and(|t| t.ends_with(".000Z")));
    let mut expected = object(
        &json!({
            "method": "POST",
            "path": "/api/v1/locations?token=REDACTED&page=REDACTED",
            "protocol": "HTTP/2",
            "response_code": 204,
            "bytes_received": 154,
            "bytes_sent": 0,
            "duration": 226,
            "upstream_service_time": 100,
            "forwarded_for": "10.0.35.28",
            "user_agent": "nsq2http",
            "request_id": "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
            "authority": "locations",
            "upstream_host": "10.0.2.1:80",
            "route": "POST /api/v1/locations",
        })
        .to_string(),
    );
    let mut meta = metadata("stdout", "", ENVOY_ID, ENVOY_DOCKER_NAME);
    meta.remove("log");
    expected.extend(meta);
    assert_eq!(record, expected);
    assert_eq!(
        object(&envoy[1].message),
        metadata(
            "stderr",
            "[2026-11-26 10:00:00.000][1][info][main] starting main dispatch loop",
            ENVOY_ID,
            ENVOY_DOCKER_NAME
        )
    );

    // Per-route statistics beside them, named by the task-definition name.
    let stats = in_stream(
        &dump.events,
        "/ecs/prod/envoy",
        &format!("sluice-stats/{TASK_ID}"),
    );
    assert_eq!(stats.len(), 1, "{stats:#?}");
    let by_route = object(&stats[0].message);
    assert_eq!(by_route["service"], "locations");
    assert_eq!(by_route["route"], "POST /api/v1/locations");
    assert_eq!(by_route["requests"], 1);

    // Credentials came from the container endpoint with the token; the
    // task metadata was read.
    let served = agent.requests();
    assert!(
        served.iter().any(|(p, _)| p == "/v4/0a1b2c3d-router/task"),
        "{served:?}"
    );
    assert!(
        served
            .iter()
            .any(|(p, auth)| p == "/creds" && auth.as_deref() == Some(TOKEN)),
        "{served:?}"
    );
}

#[test]
fn an_output_sluice_cannot_serve_is_refused_by_name() {
    let addresses = Addresses::pick();
    let conf = render_firelens_config(&spec(
        &addresses,
        8877,
        json!({
            "app": {"Name": "cloudwatch_logs", "region": "us-east-1", "log_group_name": "g", "log_stream_prefix": "p"},
            "web": {"Name": "kinesis_firehose", "region": "us-west-2", "delivery_stream": "my-stream"},
        }),
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .env("SLUICE_FIRELENS_CONFIG", &conf)
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .output()
        .expect("sluice runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("[OUTPUT] kinesis_firehose (Match web-firelens*) cannot be served by Sluice"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");

    // check-config says the same, and the routes of a good file.
    let check = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check-config")
        .arg(&conf)
        .output()
        .expect("sluice runs");
    assert_eq!(check.status.code(), Some(1));
    let good = render_firelens_config(&spec(
        &addresses,
        8877,
        json!({"app": {"Name": "cloudwatch_logs", "region": "us-east-1", "log_group_name": "/ecs/app", "log_group_template": "/ecs/$ecs_cluster/app", "log_stream_prefix": "app/", "auto_create_group": "true"}}),
    ));
    let check = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check-config")
        .arg(&good)
        .output()
        .expect("sluice runs");
    assert_eq!(check.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&check.stdout);
    let routes: Vec<&str> = stdout.lines().filter(|l| l.contains("route ")).collect();
    assert_eq!(
        routes,
        [
            "  route Match firelens-healthcheck -> null (discarded)",
            "  route Match app-firelens* -> cloudwatch_logs: group /ecs/$ecs_cluster/app (else /ecs/app), stream app/<tag>, auto_create_group",
        ]
    );
}

/// Off ECS (no metadata variable) and with no generated configuration:
/// Sluice's own configuration, container names from the FireLens tag.
#[test]
fn not_on_ecs_names_come_from_the_tag() {
    let dir = TempPath::unique_dir("noecs");
    let addresses = Addresses::pick();
    let dir_text = dir.display().to_string();
    let sidecar = Sidecar::start_at(
        &addresses,
        &[],
        &[],
        &[
            ("SLUICE_OUTPUT_TYPE", "file"),
            ("SLUICE_FILE_DIR", &dir_text),
            ("SLUICE_ENVOY_CONTAINERS", "envoy"),
            ("SLUICE_FIRELENS_CONFIG", ""),
        ],
        &["ECS_CONTAINER_METADATA_URI_V4"],
    );
    docker_send(
        &addresses.unix,
        &tag("envoy"),
        ENVOY_ID,
        ENVOY_DOCKER_NAME,
        &[(
            "stdout",
            "[{now}] \"GET /a?x=1 HTTP/1.1\" 200 - 0 2 3 - \"-\" \"-\" \"-\" \"-\" \"-\"",
        )],
    );
    let (status, _) = sidecar.stop();
    assert!(status.success());
    let path = dir
        .join("%2Fecs%2Fdefault%2Fenvoy")
        .join(format!("{TASK_ID}%2Faccess.ndjson"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Only what varies per request: the group and stream say the rest.
    assert_eq!(
        object(text.trim_end()),
        object(
            r#"{"method":"GET","path":"/a?x=REDACTED","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":2,"duration":3,"route":"GET /a"}"#
        )
    );
}

/// With task metadata and no generated configuration: the cluster, task and
/// task definition come from metadata, and a record whose tag is not a
/// FireLens tag is named by its container id.
#[test]
fn task_metadata_names_records_without_a_generated_configuration() {
    let agent = EcsAgent::start(&task_metadata(), 0.0, TOKEN);
    let dir = TempPath::unique_dir("meta");
    let dir_text = dir.display().to_string();
    let addresses = Addresses::pick();
    let uri = agent.metadata_uri();
    let sidecar = Sidecar::start_at(
        &addresses,
        &[],
        &[],
        &[
            ("SLUICE_OUTPUT_TYPE", "file"),
            ("SLUICE_FILE_DIR", &dir_text),
            ("SLUICE_FIRELENS_CONFIG", ""),
            ("ECS_CONTAINER_METADATA_URI_V4", &uri),
            // Configured in: by default the group and stream say these.
            (
                "SLUICE_CLOUDWATCH_METADATA",
                "container_name,ecs_cluster,ecs_task_arn,ecs_task_definition",
            ),
        ],
        &[],
    );
    docker_send(
        &addresses.unix,
        "docker.app",
        APP_ID,
        APP_DOCKER_NAME,
        &[("stdout", "ready")],
    );
    let (status, _) = sidecar.stop();
    assert!(status.success());
    let path = dir
        .join("%2Fecs%2Fprod%2Fapp")
        .join(format!("{TASK_ID}%2Fapp.ndjson"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let record = object(text.trim_end());
    assert_eq!(record["container_name"], "app");
    assert_eq!(record["ecs_cluster"], "prod");
    assert_eq!(record["ecs_task_arn"], task_arn().as_str());
    assert_eq!(record["ecs_task_definition"], "orders:7");
    assert_eq!(record["log"], "ready");
}

/// A metadata endpoint that is down, or slower than Sluice waits: it starts
/// anyway, says so once, and names records from their tags.
#[test]
fn a_metadata_endpoint_down_or_slow_at_start() {
    let slow = EcsAgent::start(&task_metadata(), 30.0, TOKEN);
    let down = format!("http://127.0.0.1:{}/v4/x", crate::support::free_port());
    for uri in [down, slow.metadata_uri()] {
        let addresses = Addresses::pick();
        let sidecar = Sidecar::start_at(
            &addresses,
            &[],
            &[],
            &[
                ("SLUICE_FIRELENS_CONFIG", ""),
                ("ECS_CONTAINER_METADATA_URI_V4", &uri),
            ],
            &[],
        );
        send_app(&addresses, &[("stdout", "hello")]);
        let line = sidecar.lines(1).remove(0);
        let record = object(&line);
        assert_eq!(record["container_name"], "app");
        assert_eq!(record["log"], "hello");
        assert!(!record.contains_key("ecs_cluster"), "{line}");
        let logs = sidecar.logs.lock().expect("lock").clone();
        let warnings = logs
            .iter()
            .filter(|l| l.contains("cannot read the task metadata"))
            .count();
        assert_eq!(warnings, 1, "{logs:#?}");
        let (status, _) = sidecar.stop();
        assert!(status.success());
    }
}

/// Each example task definition, rendered as the agent would render its
/// FireLens options, passes `sluice check-config` with a route per
/// container that logs through FireLens.
#[test]
fn the_example_task_definitions_render_to_configurations_sluice_serves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).expect("examples/") {
        let path = entry.expect("entry").path();
        if !path.to_string_lossy().ends_with("task-definition.json") {
            continue;
        }
        let task: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let mut containers = Map::new();
        for c in task["containerDefinitions"].as_array().expect("containers") {
            let log = &c["logConfiguration"];
            if log["logDriver"] == "awsfirelens" {
                containers.insert(
                    c["name"].as_str().expect("name").to_string(),
                    log["options"].clone(),
                );
            }
        }
        assert!(!containers.is_empty(), "{}", path.display());
        let addresses = Addresses::pick();
        let mut spec = spec(&addresses, 8877, Value::Object(containers.clone()));
        // A file of the image's /fluent-bit/configs, from image/fluent-bit.
        let router = task["containerDefinitions"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c.get("firelensConfiguration").is_some())
            .expect("a log router");
        if let Some(file) = router["firelensConfiguration"]["options"]["config-file-value"].as_str()
        {
            let in_image = file
                .strip_prefix("/fluent-bit/")
                .expect("a file of the image");
            let copy = crate::support::workspace()
                .join("image/fluent-bit")
                .join(in_image);
            spec["include"] = json!([copy.display().to_string()]);
        }
        let conf = render_firelens_config(&spec);
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("check-config")
            .arg(&conf)
            .output()
            .expect("sluice runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {stdout}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for name in containers.keys() {
            let route = format!("  route Match {name}-firelens* -> cloudwatch_logs: ");
            assert!(stdout.contains(&route), "{}: {stdout}", path.display());
        }
        if spec.get("include").is_some() {
            let filter = "  filter Match *: parser Key_Name log, Parser json, Reserve_Data\n";
            assert!(stdout.contains(filter), "{}: {stdout}", path.display());
        }
        checked += 1;
    }
    assert_eq!(checked, 2);
}

/// `role_arn` with `sts_endpoint`: the role is assumed through STS (moto's)
/// with the task role's credentials from the container endpoint, and the
/// events are sent with the role's.
#[test]
fn an_outputs_role_is_assumed_through_sts() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let conf = render_firelens_config(&spec(
        &addresses,
        crate::support::free_port(),
        json!({
            "app": {
                "Name": "cloudwatch_logs",
                "region": "us-east-1",
                "endpoint": moto.endpoint(),
                "sts_endpoint": moto.endpoint(),
                "role_arn": "arn:aws:iam::123456789012:role/cross-account-logs",
                "external_id": "sluice-e2e",
                "log_group_name": "/ecs/assumed",
                "log_stream_name": "app",
                "auto_create_group": "on",
            },
        }),
    ));
    let sidecar = start(&addresses, &ecs_env(&agent, &conf));
    send_app(&addresses, &[("stdout", "with the role")]);
    let dump = stop_once_delivered(sidecar, &moto, "the event in CloudWatch", |d| {
        !d.events.is_empty()
    });
    let events = in_stream(&dump.events, "/ecs/assumed", "app");
    assert_eq!(events.len(), 1, "{:#?}", dump.events);
    assert_eq!(object(&events[0].message)["log"], "with the role");
    assert!(agent
        .requests()
        .iter()
        .any(|(p, auth)| p == "/creds" && auth.as_deref() == Some(TOKEN)));
}

/// Outside drop-in mode, with no region configured and none in the
/// environment (ECS agents before 2026-04 set no AWS_REGION on EC2): the
/// task ARN's region is used, and the events reach CloudWatch.
#[test]
fn the_region_comes_from_the_task_arn_when_nothing_else_gives_it() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let mut env = ecs_env(&agent, std::path::Path::new(""));
    env.extend([
        ("SLUICE_OUTPUT_TYPE".to_string(), "cloudwatch".to_string()),
        ("SLUICE_CLOUDWATCH_ENDPOINT".to_string(), moto.endpoint()),
    ]);
    let sidecar = start(&addresses, &env);
    send_app(&addresses, &[("stdout", "ready")]);
    let dump = stop_once_delivered(sidecar, &moto, "the event in CloudWatch", |d| {
        !d.events.is_empty()
    });
    let events = in_stream(&dump.events, "/ecs/prod/app", &format!("{TASK_ID}/app"));
    assert_eq!(events.len(), 1, "{:#?}", dump.events);
    assert_eq!(events[0].message, "ready");
}

/// `t_ms` in the `json` parser's Time_Format, `%d/%b/%Y:%H:%M:%S %z`.
fn json_parser_time(t_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = sluice_parser::utc_date(t_ms);
    let secs = t_ms.rem_euclid(86_400_000) / 1000;
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[month as usize - 1],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A parser with `Time_System_Timezone On` reads a time without a zone in
/// the system's zone: here `TZ` says three hours east of UTC, as a POSIX
/// string (no zone files needed). A time with its own zone keeps it.
#[test]
fn a_parser_reads_times_in_the_system_s_zone() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf(
        "[PARSER]\n    Name local\n    Format regex\n    Regex ^(?<time>\\d\\S+ \\S+) (?<msg>.*)$\n    Time_Key time\n    Time_Format %Y-%m-%d %H:%M:%S\n    Time_System_Timezone On\n\n[PARSER]\n    Name zoned\n    Format regex\n    Regex ^Z (?<time>\\S+) (?<msg>.*)$\n    Time_Key time\n    Time_Format %Y-%m-%dT%H:%M:%S%z\n    Time_System_Timezone On\n\n[FILTER]\n    Name parser\n    Match app-firelens*\n    Key_Name log\n    Parser zoned\n    Parser local\n",
    );
    let sidecar = start_app_task_with_env(
        &moto,
        &agent,
        &addresses,
        &extra,
        &[("TZ", "<+03>-3".to_string())],
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let logged_ms = (now_ms / 1000 - 120) * 1000;
    // `at_ms` as a wall clock `hours` east of UTC.
    let wall = |at_ms: i64, hours: i64, sep: char| {
        let wall_ms = at_ms + hours * 3_600_000;
        let (year, month, day) = sluice_parser::utc_date(wall_ms);
        let secs = wall_ms.rem_euclid(86_400_000) / 1000;
        format!(
            "{year}-{month:02}-{day:02}{sep}{:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    };
    let local_line = format!("{} in the local zone", wall(logged_ms, 3, ' '));
    let zoned_line = format!("Z {}-0100 with its zone", wall(logged_ms - 1000, -1, 'T'));
    send_app(
        &addresses,
        &[("stdout", &local_line), ("stdout", &zoned_line)],
    );
    let dump = stop_once_delivered(sidecar, &moto, "both events in CloudWatch", |d| {
        d.events.len() >= 2
    });
    let mut app: Vec<(i64, String)> = app_events(&dump)
        .iter()
        .map(|e| {
            (
                e.timestamp,
                object(&e.message)["msg"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    app.sort();
    assert_eq!(
        app,
        [
            (logged_ms - 1000, "with its zone".to_string()),
            (logged_ms, "in the local zone".to_string()),
        ],
        "{:#?}",
        dump.events
    );
}

/// GET `url` with Python's urllib: `STATUS BODY`, also for an error status.
fn http_get(url: &str) -> String {
    let script = format!(
        "import urllib.request as u, urllib.error as e\ntry:\n    r = u.urlopen('{url}')\nexcept e.HTTPError as x:\n    r = x\nprint(r.status, r.read().decode().strip())"
    );
    let out = Command::new(crate::support::python())
        .args(["-c", &script])
        .output()
        .expect("python");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A task definition that names aws-for-fluent-bit's built-in
/// `/fluent-bit/configs/parse-json.conf` (here the image's copy, from
/// `image/fluent-bit`): JSON application lines are unpacked into the record
/// and take their time from `time`, other lines and Envoy's JSON access
/// lines stay as they are; everything redacted. The health checks AWS
/// documents for aws-for-fluent-bit answer as Fluent Bit's do.
#[test]
fn aws_for_fluent_bits_parse_json_conf() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let health_port = crate::support::free_port();
    let parse_json = crate::support::workspace().join("image/fluent-bit/configs/parse-json.conf");
    let output = |group: &str| moto_output(&moto, group);
    let mut spec = spec(
        &addresses,
        health_port,
        json!({"app": output("/ecs/app"), "envoy": output("/ecs/envoy")}),
    );
    spec["include"] = json!([parse_json.display().to_string()]);
    let conf = render_firelens_config(&spec);
    let sidecar = start(&addresses, &ecs_env(&agent, &conf));

    // `echo '{"health": "check"}' | nc 127.0.0.1 8877`: a netcat that keeps
    // its side open after its input ends (OpenBSD's) still gets an end.
    {
        use std::io::{Read, Write};
        let mut hc = std::net::TcpStream::connect(("127.0.0.1", health_port)).expect("accepted");
        hc.write_all(b"{\"health\": \"check\"}\n").expect("written");
        hc.set_read_timeout(Some(Duration::from_secs(8)))
            .expect("timeout set");
        assert_eq!(hc.read(&mut [0; 16]).expect("closed by Sluice"), 0);
    }
    let admin = format!("http://{}", sidecar.admin);
    assert_eq!(http_get(&format!("{admin}/api/v1/health")), "200 ok");
    let uptime = http_get(&format!("{admin}/api/v1/uptime"));
    let (status, body) = uptime.split_once(' ').expect("status and body");
    assert_eq!(status, "200");
    let body = object(body);
    assert!(body["uptime_sec"].is_u64(), "{body:?}");
    assert!(
        body["uptime_hr"]
            .as_str()
            .unwrap()
            .starts_with("Sluice has been running: 0 day, "),
        "{body:?}"
    );

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let logged_ms = (now_ms / 1000 - 120) * 1000;
    let json_line = json!({
        "level": "error",
        "msg": "GET /pay?token=t0psecret failed",
        "req": {"url": "/cb?password=hunter2&id=7", "tries": 2},
        "time": json_parser_time(logged_ms),
        "source": "the app's own",
    })
    .to_string();
    send_app(
        &addresses,
        &[("stdout", &json_line), ("stderr", "plain GET /x?token=abc")],
    );
    let access = r#"{"start_time":"{now}","method":"GET","path":"/users/42?token=s3cret","protocol":"HTTP/1.1","response_code":200,"bytes_received":0,"bytes_sent":"1542","duration_ms":12,"upstream_service_time":"11","forwarded_for":null,"user_agent":"curl/8.5.0","request_id":"b7d3","authority":"users:8080","upstream_host":"10.0.2.4:8080"}"#;
    docker_send(
        &addresses.unix,
        &tag("envoy"),
        ENVOY_ID,
        ENVOY_DOCKER_NAME,
        &[("stdout", access)],
    );
    let dump = stop_once_delivered(sidecar, &moto, "every event in CloudWatch", |d| {
        d.events.len() >= 3
    });

    let metadata = json!({
        "container_id": APP_ID,
        "container_name": APP_DOCKER_NAME,
        "ecs_cluster": "prod",
        "ecs_task_arn": task_arn(),
        "ecs_task_definition": "orders:7",
    });
    let with_metadata = |more: Value| {
        let mut record = metadata.as_object().unwrap().clone();
        record.extend(more.as_object().unwrap().clone());
        record
    };
    let mut app = app_events(&dump);
    app.sort_by_key(|e| e.message.contains("plain"));
    assert_eq!(app.len(), 2, "{:#?}", dump.events);
    // The record's own `source` (Docker's) wins over the line's.
    assert_eq!(
        object(&app[0].message),
        with_metadata(json!({
            "level": "error",
            "msg": "GET /pay?token=REDACTED failed",
            "req": {"url": "/cb?password=REDACTED&id=REDACTED", "tries": 2},
            "source": "stdout",
        }))
    );
    assert_eq!(app[0].timestamp, logged_ms);
    assert_eq!(
        object(&app[1].message),
        with_metadata(json!({"log": "plain GET /x?token=REDACTED", "source": "stderr"}))
    );

    let envoy = in_stream(
        &dump.events,
        "/ecs/envoy",
        &format!("from-{}", tag("envoy")),
    );
    assert_eq!(envoy.len(), 1, "{:#?}", dump.events);
    let record = object(&envoy[0].message);
    assert_eq!(record["path"], "/users/42?token=REDACTED");
    assert_eq!(record["route"], "GET /users/{id}");
    assert_eq!(record["container_name"], ENVOY_DOCKER_NAME);
    assert!(!record.contains_key("log"), "{record:?}");
}

/// A configuration written for aws-for-fluent-bit's init image names the
/// variables the init process exports from the task metadata: Sluice reads
/// them from the metadata itself, in `run` and in `check-config`.
#[test]
fn init_image_variables_come_from_the_task_metadata() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let spec = spec(
        &addresses,
        crate::support::free_port(),
        json!({"app": {
            "Name": "cloudwatch_logs",
            "region": "${AWS_REGION}",
            "endpoint": moto.endpoint(),
            "log_group_name": "/aws/ecs/containerinsights/${ECS_CLUSTER}/application",
            "log_stream_name": "${ECS_FAMILY}-${ECS_REVISION}/${ECS_TASK_ID}",
            "auto_create_group": "true",
        }}),
    );
    let conf = render_firelens_config(&spec);
    let env = ecs_env(&agent, &conf);
    let checked = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("check-config")
        .arg(&conf)
        .env_remove("AWS_REGION")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("sluice runs");
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert_eq!(checked.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("cloudwatch: region us-east-1,"), "{stdout}");
    assert!(!stdout.contains("is used but not set"), "{stdout}");
    let sidecar = start(&addresses, &env);
    send_app(&addresses, &[("stdout", "hello")]);
    let dump = stop_once_delivered(sidecar, &moto, "the line in CloudWatch", |d| {
        !d.events.is_empty()
    });
    let stream = format!("orders-7/{TASK_ID}");
    let events = in_stream(
        &dump.events,
        "/aws/ecs/containerinsights/prod/application",
        &stream,
    );
    assert_eq!(events.len(), 1, "{:#?}", dump.events);
    assert_eq!(object(&events[0].message)["log"], "hello");
}

/// A `rewrite_tag` filter in the user's file sends error lines to an
/// output of their own: the copy leaves with the new tag, redacted, and
/// the original, not kept, goes nowhere else. Another copies Envoy's access
/// records to an audit group and keeps them: each goes to both groups, and
/// counts once in the statistics.
#[test]
fn rewrite_tag_routes_error_lines_to_their_own_output() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf(&format!(
            "[FILTER]\n    Name  rewrite_tag\n    Match app-firelens*\n    Rule  $log ^(ERROR|FATAL)\\b errors.$1 false\n\n[FILTER]\n    Name  rewrite_tag\n    Match envoy-firelens*\n    Rule  $log ^\\[ audit true\n\n[OUTPUT]\n    Name cloudwatch_logs\n    Match errors.*\n    region us-east-1\n    endpoint {0}\n    log_group_name /ecs/errors\n    log_stream_name $TAG\n    log_stream_template $TAG\n    auto_create_group true\n\n[OUTPUT]\n    Name cloudwatch_logs\n    Match audit\n    region us-east-1\n    endpoint {0}\n    log_group_name /ecs/audit\n    log_stream_name all\n    auto_create_group true\n",
            moto.endpoint()
        ),
    );
    let output = |group: &str| moto_output(&moto, group);
    let mut spec = spec(
        &addresses,
        crate::support::free_port(),
        json!({"app": output("/ecs/app"), "envoy": output("/ecs/envoy")}),
    );
    spec["include"] = json!([extra.arg()]);
    let conf = render_firelens_config(&spec);
    let sidecar = start(&addresses, &ecs_env(&agent, &conf));
    send_app(
        &addresses,
        &[
            ("stdout", "INFO GET /a?token=t1 ok"),
            ("stderr", "ERROR GET /b?token=t2 failed"),
            ("stderr", "FATAL out of memory"),
        ],
    );
    let access = r#"[2026-11-28T15:01:02.123Z] "GET /users/42?token=s3cret HTTP/1.1" 200 - 0 1542 12 11 "-" "curl/8.5.0" "b7d3" "users:8080" "10.0.2.4:8080""#;
    docker_send(
        &addresses.unix,
        &tag("envoy"),
        ENVOY_ID,
        ENVOY_DOCKER_NAME,
        &[("stdout", access)],
    );
    moto.wait_for_dump("every line in CloudWatch", |d| d.events.len() >= 5);
    let (status, _) = sidecar.stop();
    assert!(status.success());
    // The statistics are written as Sluice stops.
    let dump = moto.wait_for_dump("the statistics", |d| {
        d.events
            .iter()
            .any(|e| e.stream.starts_with("sluice-stats/"))
    });
    let logs = |group: &str, stream: &str| -> Vec<String> {
        in_stream(&dump.events, group, stream)
            .iter()
            .map(|e| {
                object(&e.message)["log"]
                    .as_str()
                    .expect("a log")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        logs("/ecs/app", &format!("from-{}", tag("app"))),
        ["INFO GET /a?token=REDACTED ok"],
        "{:#?}",
        dump.events
    );
    assert_eq!(
        logs("/ecs/errors", "errors.ERROR"),
        ["ERROR GET /b?token=REDACTED failed"]
    );
    assert_eq!(logs("/ecs/errors", "errors.FATAL"), ["FATAL out of memory"]);
    let path = |group: &str, stream: &str| -> Vec<String> {
        in_stream(&dump.events, group, stream)
            .iter()
            .map(|e| {
                object(&e.message)["path"]
                    .as_str()
                    .expect("a path")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        path("/ecs/envoy", &format!("from-{}", tag("envoy"))),
        ["/users/42?token=REDACTED"]
    );
    assert_eq!(path("/ecs/audit", "all"), ["/users/42?token=REDACTED"]);
    let stats: Vec<Map<String, Value>> = dump
        .events
        .iter()
        .filter(|e| e.stream == format!("sluice-stats/{TASK_ID}"))
        .map(|e| object(&e.message))
        .collect();
    assert_eq!(stats.len(), 1, "{stats:#?}");
    assert_eq!(stats[0]["route"], "GET /users/{id}");
    assert_eq!(stats[0]["requests"], 1);
    assert_eq!(dump.events.len(), 6, "{:#?}", dump.events);
}

/// A task definition written for aws-for-fluent-bit's init image names
/// its extra files by `aws_fluent_bit_init_file_N` (in the image) and
/// `aws_fluent_bit_init_s3_N` (an S3 ARN, downloaded with the task role,
/// from the bucket's own region): a parsers file's parsers join, any other
/// file is included after the generated one. One that cannot be had stops
/// the start, named: its configuration is never silently left out.
#[test]
fn init_image_files_from_the_image_and_from_s3() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let parsers = crate::support::TempPath::unique_with(
        "init-parsers",
        "conf",
        "[MULTILINE_PARSER]\n    name traces\n    type regex\n    rule \"start_state\" \"/^Dec /\" \"cont\"\n    rule \"cont\" \"/^\\s+at/\" \"cont\"\n",
    );
    // The bucket is in another region than the task's (us-east-1).
    moto.s3_put(
        "eu-west-1",
        "router-configs",
        "firelens/parsers_multiline.conf",
        &parsers,
    );
    let extra = crate::support::TempPath::unique_with(
        "init-extra",
        "conf",
        "[FILTER]\n    Name multiline\n    Match *\n    multiline.parser traces\n\n[FILTER]\n    Name grep\n    Match app-firelens*\n    Exclude log ^DEBUG\n",
    );
    let conf = render_firelens_config(&spec(
        &addresses,
        8877,
        json!({"app": {"Name": "cloudwatch_logs", "region": "us-east-1", "log_group_name": "/ecs/app", "log_stream_prefix": "p-"}}),
    ));
    let mut env = ecs_env(&agent, &conf);
    env.push(("AWS_ENDPOINT_URL_S3".into(), moto.endpoint()));
    // Where the downloaded file is written: the test's own directory.
    let tmpdir = crate::support::TempPath::unique_dir("init-tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    env.push(("TMPDIR".into(), tmpdir.arg()));
    let check = |more: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("check-config")
            .arg(&conf)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(more.iter().copied())
            .output()
            .expect("sluice runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = check(&[
        ("aws_fluent_bit_init_file_1", &extra.arg()),
        (
            "aws_fluent_bit_init_s3_2",
            "arn:aws:s3:::router-configs/firelens/parsers_multiline.conf",
        ),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("  filter Match app-firelens*: grep Exclude log ^DEBUG\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  multiline traces ({}:1): [MULTILINE_PARSER] of 2 rule(s), flush_timeout 4000 ms",
            extra.arg()
        )),
        "{stdout}"
    );
    // The task role's credentials were used.
    assert!(agent
        .requests()
        .iter()
        .any(|(p, auth)| p == "/creds" && auth.as_deref() == Some(TOKEN)));
    let (code, _, stderr) = check(&[(
        "aws_fluent_bit_init_s3_1",
        "arn:aws:s3:::router-configs/missing.conf",
    )]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("aws_fluent_bit_init_s3_1: arn:aws:s3:::router-configs/missing.conf: cannot download it: "),
        "{stderr}"
    );
}

/// A configuration copied from a Fluent Bit setup: `[SERVICE]
/// HTTP_Server` on its own port, which the task's health check asks, and a
/// JSON parser whose `Decode_Field_As json` unpacks a field that holds
/// JSON as a string.
#[test]
fn service_http_port_and_decode_field_as() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let http_port = crate::support::free_port();
    let parsers = crate::support::TempPath::unique_with(
        "parsers_decode",
        "conf",
        "[PARSER]\n    Name            payload_json\n    Format          json\n    Decode_Field_As escaped_utf8 payload do_next\n    Decode_Field_As json payload\n",
    );
    let extra = extra_conf(&format!(
            "[SERVICE]\n    HTTP_Server  On\n    HTTP_Listen  127.0.0.1\n    HTTP_Port    {http_port}\n    Health_Check On\n    Parsers_File {}\n\n[FILTER]\n    Name     parser\n    Match    app-firelens*\n    Key_Name log\n    Parser   payload_json\n",
            parsers.arg()
        ),
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    assert_eq!(
        http_get(&format!("http://127.0.0.1:{http_port}/api/v1/health")),
        "200 ok"
    );
    // admin.listen gave way to HTTP_Port.
    assert!(std::net::TcpStream::connect(sidecar.admin.as_str()).is_err());

    let line = json!({
        "level": "info",
        "payload": r#"{\"order\":7,\"callback\":\"/cb?token=t0psecret\"}"#,
    })
    .to_string();
    send_app(&addresses, &[("stdout", &line), ("stdout", "plain")]);
    let dump = stop_once_delivered(sidecar, &moto, "both lines in CloudWatch", |d| {
        d.events.len() >= 2
    });
    let app = app_events(&dump);
    let records: Vec<Map<String, Value>> = app.iter().map(|e| object(&e.message)).collect();
    assert_eq!(records.len(), 2, "{:#?}", dump.events);
    assert_eq!(records[0]["level"], "info");
    assert_eq!(
        records[0]["payload"],
        json!({"order": 7, "callback": "/cb?token=REDACTED"})
    );
    assert!(!records[0].contains_key("log"), "{:?}", records[0]);
    assert_eq!(records[1]["log"], "plain");
}

/// `[FILTER] aws` on EC2: the instance metadata (moto's instance metadata
/// service here) is added to every record; what the service cannot give
/// (moto has no network interfaces) is left out, and the records go on.
#[test]
fn aws_filter_adds_the_instance_metadata() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf("[FILTER]\n    Name              aws\n    Match             *\n    imds_version      v2\n    ec2_instance_type true\n    private_ip        true\n    ami_id            true\n    hostname          true\n    vpc_id            true\n",
    );
    let sidecar = start_app_task_with_env(
        &moto,
        &agent,
        &addresses,
        &extra,
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", moto.endpoint())],
    );
    send_app(&addresses, &[("stdout", "GET /x?token=t0psecret")]);
    let dump = stop_once_delivered(sidecar, &moto, "the line in CloudWatch", |d| {
        !d.events.is_empty()
    });
    let app = app_events(&dump);
    assert_eq!(app.len(), 1, "{:#?}", dump.events);
    let record = object(&app[0].message);
    let added: Map<String, Value> = record
        .iter()
        .filter(|(k, _)| {
            [
                "az",
                "ec2_instance_id",
                "ec2_instance_type",
                "private_ip",
                "ami_id",
                "hostname",
                "vpc_id",
            ]
            .contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        Value::Object(added),
        json!({
            "az": "us-east-1a",
            "ec2_instance_id": "i-fake",
            "ec2_instance_type": "moto.virtual",
            "private_ip": "127.0.0.1",
            "ami_id": "ami-moto-virtual",
            "hostname": "moto-instance.ec2.internal",
        })
    );
    assert_eq!(record["log"], "GET /x?token=REDACTED");
}

/// AWS's example for splitting log streams by level: a `[SERVICE]
/// Streams_File` whose stream tasks copy each level's records to a tag of
/// their own, which the `cloudwatch` output takes into a stream per level.
/// The app's own output still takes every record.
#[test]
fn aws_s_splitting_log_streams_example() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let streams = crate::support::TempPath::unique_with(
        "stream_processing",
        "conf",
        "[STREAM_TASK]\n    Name   debug_logs\n    Exec   CREATE STREAM debug WITH (tag='logs.debug') AS SELECT * from TAG:'app*' WHERE level = 'debug';\n\n[STREAM_TASK]\n    Name   error_logs\n    Exec   CREATE STREAM error WITH (tag='logs.error') AS SELECT * from TAG:'app*' WHERE level = 'error';\n",
    );
    let extra = extra_conf(&format!(
            "[SERVICE]\n    Streams_File {}\n\n[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser json\n    Reserve_Data True\n\n[OUTPUT]\n    Name cloudwatch\n    Match   logs.*\n    region us-east-1\n    endpoint {}\n    log_group_name streams-example\n    log_stream_prefix log-level-\n    auto_create_group true\n",
            streams.arg(),
            moto.endpoint()
        ),
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let lines = [
        json!({"level": "debug", "msg": "cache miss /x?token=t0psecret"}).to_string(),
        json!({"level": "info", "msg": "started"}).to_string(),
        json!({"level": "error", "msg": "boom"}).to_string(),
    ];
    let input: Vec<(&str, &str)> = lines.iter().map(|l| ("stdout", l.as_str())).collect();
    send_app(&addresses, &input);
    let dump = stop_once_delivered(sidecar, &moto, "the copies and the records", |d| {
        d.events.len() >= 5
    });
    let msgs = |group: &str, stream: &str| -> Vec<Value> {
        in_stream(&dump.events, group, stream)
            .iter()
            .map(|e| object(&e.message)["msg"].clone())
            .collect()
    };
    assert_eq!(
        msgs("streams-example", "log-level-logs.debug"),
        [json!("cache miss /x?token=REDACTED")]
    );
    assert_eq!(
        msgs("streams-example", "log-level-logs.error"),
        [json!("boom")]
    );
    assert_eq!(
        msgs("/ecs/app", &format!("from-{}", tag("app"))),
        [
            json!("cache miss /x?token=REDACTED"),
            json!("started"),
            json!("boom")
        ]
    );
    assert_eq!(dump.events.len(), 5, "{:#?}", dump.events);
}

/// AWS's multi-config example tails a file the application writes on a
/// shared volume: `[INPUT] tail` with `Read_from_Head`, its lines to a
/// `cloudwatch_logs` output, redacted, whether written before the router
/// started, after, or across a rotation.
#[test]
fn tail_input_follows_a_shared_volume_s_file() {
    use std::io::Write;
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let log =
        crate::support::TempPath::unique_with("app", "log", "written before the router started\n");
    let extra = extra_conf(&format!(
            "[INPUT]\n    Name            tail\n    Tag             app\n    Path            {}\n    Read_from_Head  True\n    Path_Key        file\n\n[OUTPUT]\n    Name cloudwatch_logs\n    Match app\n    region us-east-1\n    endpoint {}\n    log_group_name /ecs/tailed\n    log_stream_name app-log\n    auto_create_group true\n",
            log.arg(),
            moto.endpoint()
        ),
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let append = |text: &str| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log.arg())
            .expect("the log opens");
        f.write_all(text.as_bytes()).expect("written");
    };
    append("GET /pay?token=t0psecret failed\nhalf a ");
    std::thread::sleep(Duration::from_millis(600));
    append("line\n");
    let _ = moto.wait_for_dump("the first lines", |d| d.events.len() >= 3);
    // Rotated, as logrotate's create mode does it.
    std::fs::rename(log.arg(), format!("{}.1", log.arg())).expect("rotated");
    std::fs::write(log.arg(), "after the rotation\n").expect("a new log");
    let dump = stop_once_delivered(sidecar, &moto, "every line", |d| d.events.len() >= 4);
    let _ = std::fs::remove_file(format!("{}.1", log.arg()));
    let records: Vec<Map<String, Value>> = in_stream(&dump.events, "/ecs/tailed", "app-log")
        .iter()
        .map(|e| object(&e.message))
        .collect();
    let logs: Vec<&str> = records.iter().map(|r| r["log"].as_str().unwrap()).collect();
    assert_eq!(
        logs,
        [
            "written before the router started",
            "GET /pay?token=REDACTED failed",
            "half a line",
            "after the rotation",
        ],
        "{:#?}",
        dump.events
    );
    assert!(
        records.iter().all(|r| r["file"] == log.arg()),
        "{records:?}"
    );
}

/// `[INPUT] tail` with a `DB`: a router that restarts goes on where its
/// lines were accepted, so what was written while it was stopped arrives,
/// and what it had sent is not sent again (Read_from_Head alone would send
/// the whole file again).
#[test]
fn tail_input_with_a_db_resumes_after_a_restart() {
    use std::io::Write;
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let log = crate::support::TempPath::unique_with("app", "log", "before the first start\n");
    let db = crate::support::TempPath::unique("tail", "db");
    let extra = extra_conf(&format!(
            "[INPUT]\n    Name            tail\n    Tag             app\n    Path            {}\n    Read_from_Head  True\n    DB              {}\n    DB.sync         full\n\n[OUTPUT]\n    Name cloudwatch_logs\n    Match app\n    region us-east-1\n    endpoint {}\n    log_group_name /ecs/tailed\n    log_stream_name app-log\n    auto_create_group true\n",
            log.arg(),
            db.arg(),
            moto.endpoint()
        ),
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let _ = stop_once_delivered(sidecar, &moto, "the first line", |d| !d.events.is_empty());
    std::fs::OpenOptions::new()
        .append(true)
        .open(log.arg())
        .expect("the log opens")
        .write_all(b"written while stopped /pay?token=t0psecret\n")
        .expect("written");
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let dump = stop_once_delivered(sidecar, &moto, "the second line", |d| d.events.len() >= 2);
    for journal in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{journal}", db.arg()));
    }
    let logs: Vec<String> = in_stream(&dump.events, "/ecs/tailed", "app-log")
        .iter()
        .map(|e| object(&e.message)["log"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        logs,
        [
            "before the first start",
            "written while stopped /pay?token=REDACTED"
        ],
        "{:#?}",
        dump.events
    );
}

/// `[FILTER] lua` with a script file, as Fluent Bit's documentation
/// writes them: it adds a key, drops health-check noise and keeps the
/// rest; the record it returns is redacted like any other.
#[test]
fn lua_filter_script() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let script = crate::support::TempPath::unique_with(
        "filter",
        "lua",
        "function cb_filter(tag, timestamp, record)\n    if string.find(record[\"log\"], \"GET /health\", 1, true) then\n        return -1, timestamp, record\n    end\n    record[\"team\"] = \"payments\"\n    record[\"length\"] = string.len(record[\"log\"])\n    return 2, timestamp, record\nend\n",
    );
    let extra = extra_conf(&format!(
        "[FILTER]\n    Name   lua\n    Match  app-firelens*\n    script {}\n    call   cb_filter\n",
        script.arg()
    ));
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    send_app(
        &addresses,
        &[
            ("stdout", "GET /health 200"),
            ("stdout", "GET /pay?token=t0psecret 200"),
        ],
    );
    let dump = stop_once_delivered(sidecar, &moto, "the kept line", |d| !d.events.is_empty());
    let app = app_events(&dump);
    assert_eq!(app.len(), 1, "{:#?}", dump.events);
    let record = object(&app[0].message);
    assert_eq!(record["log"], "GET /pay?token=REDACTED 200");
    assert_eq!(record["team"], "payments");
    assert_eq!(record["length"], 28);
    assert_eq!(dump.events.len(), 1, "{:#?}", dump.events);
}

/// A throttle filter that caps an application's lines: with empty panes
/// it keeps `Rate × Window` records of a burst and drops the rest, counted
/// as filtered. (`Interval 1h`: no tick frees the window during the test.)
#[test]
fn throttle_filter_caps_a_burst() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf(
        "[FILTER]\n    Name     throttle\n    Match    app-firelens*\n    Rate     4\n    Window   3\n    Interval 1h\n",
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let lines: Vec<String> = (0..30).map(|i| format!("line {i}")).collect();
    let sent: Vec<(&str, &str)> = lines.iter().map(|l| ("stdout", l.as_str())).collect();
    send_app(&addresses, &sent);
    wait_until("records dropped", Duration::from_millis(50), || {
        let (_, samples) = scrape(&sidecar.admin);
        samples
            .get("sluice_firelens_filtered_total")
            .copied()
            .unwrap_or(0.0)
            >= 18.0
    });
    let (_, samples) = scrape(&sidecar.admin);
    assert_eq!(samples.get("sluice_firelens_filtered_total"), Some(&18.0));
    assert_eq!(samples.get("sluice_forward_events_total"), Some(&30.0));
    let dump = stop_once_delivered(sidecar, &moto, "the kept lines", |d| d.events.len() >= 12);
    let logs = app_logs(&dump);
    assert_eq!(logs, lines[..12]);
    assert_eq!(dump.events.len(), 12, "{:#?}", dump.events);
}

/// `log_group_class INFREQUENT_ACCESS` and `new_log_group_tags`: the
/// group Sluice creates is of that class, with those tags (what
/// CreateLogGroup was asked, seen through a proxy; moto keeps no class).
#[test]
fn log_group_class_and_tags_of_a_created_group() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let proxy =
        crate::proxy::FaultProxy::start(moto.addr, Box::new(|_, _| crate::proxy::Fault::Pass));
    let mut output = moto_output(&moto, "/ecs/app");
    output["endpoint"] = json!(proxy.endpoint());
    output["log_group_class"] = json!("INFREQUENT_ACCESS");
    output["new_log_group_tags"] = json!("team=payments,cost-center=42");
    let conf = render_firelens_config(&spec(
        &addresses,
        crate::support::free_port(),
        json!({ "app": output }),
    ));
    let sidecar = start(&addresses, &ecs_env(&agent, &conf));
    send_app(&addresses, &[("stdout", "one line")]);
    stop_once_delivered(sidecar, &moto, "the line", |d| !d.events.is_empty());
    let created: Vec<_> = proxy
        .recorded()
        .into_iter()
        .filter(|r| r.operation == "CreateLogGroup")
        .map(|r| r.body)
        .collect();
    assert_eq!(
        created,
        [json!({
            "logGroupName": "/ecs/app",
            "logGroupClass": "INFREQUENT_ACCESS",
            "tags": {"team": "payments", "cost-center": "42"}
        })]
    );
}

/// `[SERVICE] Grace`, as aws-for-fluent-bit's `minimize-log-loss.conf`
/// sets it, replaces `shutdown.grace`: a stop waits that long for what is
/// pending.
#[test]
fn service_grace_sets_the_shutdown_grace() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf("[SERVICE]\n    Flush 1\n    Grace 7\n");
    // A drain as long as the grace shrinks to half of it, as Fluent Bit's
    // inputs take half its grace.
    let sidecar = start_app_task_with_env(
        &moto,
        &agent,
        &addresses,
        &extra,
        &[("SLUICE_SHUTDOWN_DRAIN", "10s".to_string())],
    );
    let logs = sidecar.logs.clone();
    let (status, _) = sidecar.stop();
    assert!(status.success());
    let logs = logs.lock().unwrap().clone();
    let draining = crate::cloudwatch::log_lines_with(&logs, "draining: still accepting input");
    assert_eq!(draining.len(), 1, "{logs:?}");
    assert_eq!(draining[0]["fields"]["grace_ms"], 7000);
    assert_eq!(draining[0]["fields"]["drain_ms"], 3500);
}

/// AWS's out-of-memory prevention example: the generated unix forward
/// input declared again with `storage.type filesystem` (AWS's way to set
/// its options), and `[SERVICE] storage.path`. Sluice's spool is opened
/// there: what it took while CloudWatch was out of reach is sent by the
/// next run after a kill -9.
#[test]
fn filesystem_storage_keeps_records_across_a_kill() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let storage = crate::support::TempPath::unique_dir("flb-storage");
    let extra = extra_conf(&format!(
        "[SERVICE]\n    storage.path {}\n    storage.sync full\n\n[INPUT]\n    Name forward\n    unix_path {}\n    storage.type filesystem\n",
        storage.arg(),
        addresses.unix.display()
    ));
    let conf_sending_to = |endpoint: &str| {
        let mut output = moto_output(&moto, "/ecs/app");
        output["endpoint"] = json!(endpoint);
        let mut spec = spec(
            &addresses,
            crate::support::free_port(),
            json!({ "app": output }),
        );
        spec["include"] = json!([extra.arg()]);
        render_firelens_config(&spec)
    };
    // Nothing listens there: every request fails.
    let unreachable = conf_sending_to(&format!("http://127.0.0.1:{}", crate::support::free_port()));
    let first = start(&addresses, &ecs_env(&agent, &unreachable));
    send_app(
        &addresses,
        &[
            ("stdout", "GET /pay?token=t0psecret 200"),
            ("stderr", "second line"),
        ],
    );
    // The spool's segments hold the lines as they will be sent: redacted.
    let spooled = || -> Vec<u8> {
        std::fs::read_dir(&storage)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    let holds = |bytes: &[u8], text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
    wait_until(
        "both lines in storage.path",
        Duration::from_millis(50),
        || {
            let bytes = spooled();
            holds(&bytes, "GET /pay?token=REDACTED 200") && holds(&bytes, "second line")
        },
    );
    assert!(!holds(&spooled(), "t0psecret"));
    first.kill();
    let reachable = conf_sending_to(&moto.endpoint());
    let second = start(&addresses, &ecs_env(&agent, &reachable));
    let dump = stop_once_delivered(second, &moto, "the spooled lines", |d| d.events.len() >= 2);
    let mut logs = app_logs(&dump);
    logs.sort();
    assert_eq!(logs, ["GET /pay?token=REDACTED 200", "second line"]);
    assert_eq!(dump.events.len(), 2, "{:#?}", dump.events);
    // Delivered: the segments are gone.
    assert!(spooled().is_empty());
}

/// A debugging output next to CloudWatch, as AWS's troubleshooting guide
/// adds one: `[OUTPUT] stdout` writes the records it takes, redacted, to
/// Sluice's standard output, and CloudWatch still gets them.
#[test]
fn stdout_output_for_debugging() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf("[OUTPUT]\n    Name   stdout\n    Match  app-firelens*\n    Format json_lines\n    json_date_key false\n",
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    send_app(&addresses, &[("stdout", "GET /pay?token=t0psecret 200")]);
    let dump = moto.wait_for_dump("the line in CloudWatch", |d| !d.events.is_empty());
    let (status, stdout) = sidecar.stop();
    assert!(status.success());
    let app = app_events(&dump);
    assert_eq!(app.len(), 1, "{:#?}", dump.events);
    let printed: Vec<Map<String, Value>> = stdout
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| object(l))
        .collect();
    assert_eq!(printed, [object(&app[0].message)], "{stdout:?}");
    assert_eq!(printed[0]["log"], "GET /pay?token=REDACTED 200");
    assert!(
        stdout.iter().all(|l| !l.contains("t0psecret")),
        "{stdout:?}"
    );
}

/// AWS's EMF-over-TCP FireLens example: the application writes Embedded
/// Metric Format lines to a tcp input, which a `cloudwatch_logs` output
/// with `log_key log` and `log_format json/emf` sends on as they are.
#[test]
fn aws_s_emf_over_tcp_example() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let emf_port = crate::support::free_port();
    let extra = extra_conf(&format!(
            "# TCP input used for EMF payloads\n[INPUT]\n    Name        tcp\n    Listen      127.0.0.1\n    Port        {emf_port}\n    Chunk_Size  32\n    Buffer_Size 64\n    Format      none\n    Tag         emf-test\n\n[OUTPUT]\n    Name                cloudwatch_logs\n    Match               emf-*\n    region              us-east-1\n    endpoint            {}\n    log_key             log\n    log_group_name      aws-emf-ecs-firelens-example-metrics\n    log_stream_prefix   from-fluent-bit-\n    auto_create_group   true\n    log_format          json/emf\n    workers             1\n",
            moto.endpoint()
        ),
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let metrics = [
        r#"{"_aws":{"Timestamp":1764340000000,"CloudWatchMetrics":[{"Namespace":"orders","Dimensions":[["Service"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"}]}]},"Service":"orders","Latency":12}"#,
        r#"{"_aws":{"Timestamp":1764340001000,"CloudWatchMetrics":[{"Namespace":"orders","Dimensions":[["Service"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"}]}]},"Service":"orders","Latency":15}"#,
    ];
    {
        use std::io::Write;
        let mut socket =
            std::net::TcpStream::connect(("127.0.0.1", emf_port)).expect("the tcp input listens");
        // Two writes, the second line cut across them.
        let text = format!("{}\n{}\n", metrics[0], metrics[1]);
        let (a, b) = text.split_at(text.len() - 40);
        socket.write_all(a.as_bytes()).expect("written");
        socket.flush().expect("flushed");
        std::thread::sleep(Duration::from_millis(50));
        socket.write_all(b.as_bytes()).expect("written");
    }
    let dump = stop_once_delivered(sidecar, &moto, "the metrics in CloudWatch", |d| {
        d.events.len() >= 2
    });
    let sent: Vec<&str> = in_stream(
        &dump.events,
        "aws-emf-ecs-firelens-example-metrics",
        "from-fluent-bit-emf-test",
    )
    .iter()
    .map(|e| e.message.as_str())
    .collect();
    assert_eq!(sent, metrics, "{:#?}", dump.events);
}

/// An exec input: the command's lines are records (`{"exec": line}`,
/// the last one without a newline too), redacted like every other, and go
/// where an output's Match takes their tag.
#[test]
fn an_exec_input_s_lines_are_records() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf(&format!(
        "[INPUT]\n    Name exec\n    Tag probe\n    Command printf 'first\\nGET /x?token=s3cret\\nlast without a newline'\n    Oneshot On\n\n[OUTPUT]\n    Name cloudwatch_logs\n    Match probe\n    region us-east-1\n    endpoint {}\n    log_group_name probes\n    log_stream_name exec\n    auto_create_group true\n",
        moto.endpoint()
    ));
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let dump = stop_once_delivered(sidecar, &moto, "the command's lines in CloudWatch", |d| {
        d.events.len() >= 3
    });
    let sent: Vec<Value> = in_stream(&dump.events, "probes", "exec")
        .iter()
        .map(|e| Value::Object(object(&e.message)))
        .collect();
    // With the ECS keys the generated record_modifier adds to every record.
    let record = |line: &str| {
        json!({
            "exec": line,
            "ecs_cluster": "prod",
            "ecs_task_arn": task_arn(),
            "ecs_task_definition": "orders:7",
        })
    };
    assert_eq!(
        sent,
        [
            record("first"),
            record("GET /x?token=REDACTED"),
            record("last without a newline"),
        ],
        "{:#?}",
        dump.events
    );
}

/// A dummy input, as a task definition's configuration may add one to
/// check a route: its records, each copy, at the start time given, then
/// one interval later, redacted like every other record.
#[test]
fn a_dummy_input_s_records_are_sent() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    // A minute ago, so that CloudWatch keeps the records.
    let start_sec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    let extra = extra_conf(&format!(
        "[INPUT]\n    Name dummy\n    Tag probe\n    Dummy {{\"path\":\"/x?token=s3cret\"}} {{\"n\":2}}\n    Copies 2\n    Samples 2\n    Interval_NSec 100000000\n    Start_time_sec {start_sec}\n    Flush_on_startup On\n\n[OUTPUT]\n    Name cloudwatch_logs\n    Match probe\n    region us-east-1\n    endpoint {}\n    log_group_name probes\n    log_stream_name dummy\n    auto_create_group true\n",
        moto.endpoint()
    ));
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let dump = stop_once_delivered(sidecar, &moto, "the dummy records in CloudWatch", |d| {
        in_stream(&d.events, "probes", "dummy").len() >= 8
    });
    let sent: Vec<(i64, Value)> = in_stream(&dump.events, "probes", "dummy")
        .iter()
        .map(|e| (e.timestamp, Value::Object(object(&e.message))))
        .collect();
    let with_ecs_keys = |mut record: Value| {
        let keys = json!({
            "ecs_cluster": "prod",
            "ecs_task_arn": task_arn(),
            "ecs_task_definition": "orders:7",
        });
        record
            .as_object_mut()
            .unwrap()
            .extend(keys.as_object().unwrap().clone());
        record
    };
    let records: Vec<Value> = sent.iter().map(|(_, r)| r.clone()).collect();
    let one = [
        with_ecs_keys(json!({"path": "/x?token=REDACTED"})),
        with_ecs_keys(json!({"n": 2})),
    ];
    assert_eq!(
        records,
        [one.clone(), one.clone(), one.clone(), one].concat(),
        "{:#?}",
        dump.events
    );
    // The first generation (at the start) at the start time; the second
    // an interval later, as its time moves on from there.
    let first_ms = start_sec as i64 * 1000;
    let times: Vec<i64> = sent.iter().map(|(t, _)| *t).collect();
    assert!(times[..4].iter().all(|&t| t == first_ms), "{times:?}");
    assert!(
        times[4..].iter().all(|&t| t == times[4] && t > first_ms),
        "{times:?}"
    );
}

/// aws-for-fluent-bit's built-in `plugin-metrics-to-cloudwatch.conf` (the
/// image's copy): an exec input reads the router's own
/// `/api/v1/metrics/prometheus`, grep and the parser of
/// `plugin-metrics-parser.conf` make a record of each counter, and they go
/// to the log group the task names. Here the file's port, interval, parser
/// path and `curl` (which this machine may lack) are rewritten: Python
/// fetches the page, every second.
#[test]
fn aws_for_fluent_bits_plugin_metrics_conf() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let configs = crate::support::workspace().join("image/fluent-bit/configs");
    let admin_port = crate::support::free_port();
    let fetch = format!(
        "{} -c \"import sys, urllib.request as u; sys.stdout.write(u.urlopen('http://127.0.0.1:{admin_port}/api/v1/metrics/prometheus').read().decode())\"",
        crate::support::python().display()
    );
    let conf = std::fs::read_to_string(configs.join("plugin-metrics-to-cloudwatch.conf"))
        .expect("the image's copy")
        .replace("HTTP_PORT    2020", &format!("HTTP_PORT    {admin_port}"))
        .replace("HTTP_Listen  0.0.0.0", "HTTP_Listen  127.0.0.1")
        .replace(
            "/fluent-bit/configs/plugin-metrics-parser.conf",
            &configs
                .join("plugin-metrics-parser.conf")
                .display()
                .to_string(),
        )
        .replace("Interval_Sec 30", "Interval_Sec 1")
        .replace(
            "curl -s http://127.0.0.1:2020/api/v1/metrics/prometheus",
            &fetch,
        )
        .replace(
            "region ${FLUENT_BIT_METRICS_LOG_REGION}",
            &format!(
                "region ${{FLUENT_BIT_METRICS_LOG_REGION}}\n    endpoint {}",
                moto.endpoint()
            ),
        );
    let extra = extra_conf(&conf);
    let sidecar = start_app_task_with_env(
        &moto,
        &agent,
        &addresses,
        &extra,
        &[
            (
                "FLUENT_BIT_METRICS_LOG_GROUP",
                "fluent-bit-metrics".to_string(),
            ),
            ("FLUENT_BIT_METRICS_LOG_REGION", "us-east-1".to_string()),
            ("HOSTNAME", "ip-10-0-0-7".to_string()),
        ],
    );
    send_app(&addresses, &[("stdout", "one"), ("stdout", "two")]);
    // The app's output, as Fluent Bit names it: outputs are numbered all
    // together, in the file's order, where the included file's comes
    // before the health check's and the app's.
    const APP_OUTPUT: &str = "cloudwatch_logs.2";
    // Once both lines are in CloudWatch, a later scrape counts them.
    let counted = |d: &CloudWatchDump| {
        in_stream(
            &d.events,
            "fluent-bit-metrics",
            "ip-10-0-0-7-fb-internal-metrics",
        )
        .iter()
        .any(|e| {
            let r = object(&e.message);
            let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            field("metric") == "fluentbit_output_proc_records_total"
                && field("plugin") == APP_OUTPUT
                && field("value") == "2"
        })
    };
    let dump = stop_once_delivered(sidecar, &moto, "the app's two records counted", counted);
    let metrics: Vec<Map<String, Value>> = in_stream(
        &dump.events,
        "fluent-bit-metrics",
        "ip-10-0-0-7-fb-internal-metrics",
    )
    .iter()
    .map(|e| object(&e.message))
    .collect();
    // Every counter line is a record of its four fields, the hostname and
    // the ECS keys; the other lines (uptime, start time, build) keep
    // `exec`; no HELP or TYPE line is left.
    let plugins: std::collections::BTreeSet<(String, String)> = metrics
        .iter()
        .filter(|r| r.contains_key("metric"))
        .map(|r| {
            let mut keys: Vec<&str> = r.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "ecs_cluster",
                    "ecs_task_arn",
                    "ecs_task_definition",
                    "hostname",
                    "metric",
                    "plugin",
                    "time",
                    "value"
                ],
                "{r:?}"
            );
            (
                r["metric"].as_str().unwrap().to_string(),
                r["plugin"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let inputs = ["forward.0", "forward.1", "tcp.2", "exec.3"];
    // The agent's record_modifier, then the included file's filters.
    let filters = [
        "record_modifier.0",
        "grep.1",
        "grep.2",
        "parser.3",
        "record_modifier.4",
    ];
    let outputs = ["cloudwatch_logs.0", "null.1", APP_OUTPUT];
    let mut want = std::collections::BTreeSet::new();
    for plugin in filters {
        for counter in [
            "records",
            "drop_records",
            "drop_bytes",
            "add_records",
            "bytes",
        ] {
            want.insert((
                format!("fluentbit_filter_{counter}_total"),
                plugin.to_string(),
            ));
        }
    }
    for plugin in inputs {
        for counter in ["records", "bytes"] {
            want.insert((
                format!("fluentbit_input_{counter}_total"),
                plugin.to_string(),
            ));
        }
    }
    for plugin in outputs {
        for counter in [
            "proc_records",
            "proc_bytes",
            "errors",
            "retries",
            "retries_failed",
            "dropped_records",
            "retried_records",
        ] {
            want.insert((
                format!("fluentbit_output_{counter}_total"),
                plugin.to_string(),
            ));
        }
    }
    assert_eq!(plugins, want);
    // Every scrape's `# HELP` lines are the first grep's to drop.
    assert!(
        metrics.iter().any(|r| {
            r.get("metric").and_then(Value::as_str) == Some("fluentbit_filter_drop_records_total")
                && r.get("plugin").and_then(Value::as_str) == Some("grep.1")
                && r.get("value").and_then(Value::as_str) != Some("0")
        }),
        "{metrics:#?}"
    );
    let others: std::collections::BTreeSet<&str> = metrics
        .iter()
        .filter_map(|r| r.get("exec").and_then(Value::as_str))
        .map(|line| line.split([' ', '{']).next().unwrap_or(""))
        .collect();
    assert_eq!(
        others,
        [
            "fluentbit_build_info",
            "fluentbit_uptime",
            "process_start_time_seconds"
        ]
        .into()
    );
}

/// Fluent Bit's v2 metrics: `/api/v2/metrics/prometheus`, read by
/// prometheus_client's parser, and `/api/v2/metrics`, with the task's
/// counts under Fluent Bit's family and plugin names.
#[test]
fn fluent_bits_v2_metrics() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf("[FILTER]\n    Name grep\n    Match *\n    Exclude log ^drop\n");
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    send_app(
        &addresses,
        &[("stdout", "one"), ("stdout", "drop me"), ("stderr", "two")],
    );
    moto.wait_for_dump("the two kept lines", |d| app_events(d).len() == 2);
    // The shipper counts a batch once CloudWatch has answered it.
    let proc_records = "fluentbit_output_proc_records_total{name=cloudwatch_logs.1}";
    let mut samples = Default::default();
    wait_until(
        "the app's output counted",
        Duration::from_millis(200),
        || {
            let (content_type, scraped) =
                crate::support::scrape_path(&sidecar.admin, "/api/v2/metrics/prometheus");
            assert_eq!(content_type, "text/plain; version=0.0.4");
            samples = scraped;
            samples.get(proc_records) == Some(&2.0)
        },
    );
    let text = http_get(&format!("http://{}/api/v2/metrics", sidecar.admin));
    let (status, sidecar_stopped) = sidecar.stop();
    assert!(status.success(), "{sidecar_stopped:?}");

    let value = |key: &str| samples.get(key).copied();
    // The agent's unix input takes the Docker records; the health check's
    // tcp input and the null output it feeds see none.
    for (key, want) in [
        ("fluentbit_input_records_total{name=forward.0}", 3.0),
        ("fluentbit_input_records_total{name=forward.1}", 0.0),
        ("fluentbit_input_records_total{name=tcp.2}", 0.0),
        (
            "fluentbit_filter_records_total{name=record_modifier.0}",
            3.0,
        ),
        (
            "fluentbit_filter_drop_records_total{name=record_modifier.0}",
            0.0,
        ),
        ("fluentbit_filter_records_total{name=grep.1}", 3.0),
        ("fluentbit_filter_drop_records_total{name=grep.1}", 1.0),
        ("fluentbit_output_proc_records_total{name=null.0}", 0.0),
        (proc_records, 2.0),
        ("fluentbit_output_errors_total{name=cloudwatch_logs.1}", 0.0),
        ("fluentbit_logger_logs_total{message_type=error}", 0.0),
    ] {
        assert_eq!(value(key), Some(want), "{key} in {samples:#?}");
    }
    // prometheus_client names a counter's samples `_total`, also the two
    // Fluent Bit names without it (uptime, hot reloads).
    let families: std::collections::BTreeSet<&str> = samples
        .keys()
        .map(|k| k.split('{').next().unwrap_or(k))
        .collect();
    assert_eq!(
        families.into_iter().collect::<Vec<_>>(),
        [
            "fluentbit_build_info",
            "fluentbit_filter_add_records_total",
            "fluentbit_filter_bytes_total",
            "fluentbit_filter_drop_bytes_total",
            "fluentbit_filter_drop_records_total",
            "fluentbit_filter_records_total",
            "fluentbit_hot_reloaded_times_total",
            "fluentbit_input_bytes_total",
            "fluentbit_input_records_total",
            "fluentbit_logger_logs_total",
            "fluentbit_output_dropped_records_total",
            "fluentbit_output_errors_total",
            "fluentbit_output_proc_bytes_total",
            "fluentbit_output_proc_records_total",
            "fluentbit_output_retried_records_total",
            "fluentbit_output_retries_failed_total",
            "fluentbit_output_retries_total",
            "fluentbit_process_start_time_seconds",
            "fluentbit_uptime_total",
        ]
    );
    // The text page: one `time name{labels} = value` line a sample.
    let (status, body) = text.split_once(' ').expect("status and body");
    assert_eq!(status, "200");
    let line = body
        .lines()
        .find(|l| l.contains(" fluentbit_filter_drop_records_total{name=\"grep.1\"} = "))
        .expect("grep's dropped records");
    let (stamp, rest) = line.split_once(' ').expect("a stamp");
    assert_eq!(
        rest,
        "fluentbit_filter_drop_records_total{name=\"grep.1\"} = 1"
    );
    assert_eq!(
        stamp.len(),
        "2026-11-29T10:25:11.747897788Z".len(),
        "{stamp}"
    );
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );
}

/// AWS's FireLens example for a custom stack-trace format
/// (`firelens-concatanate-multiline.html`): a `[MULTILINE_PARSER]` in a
/// parsers file named by `[SERVICE] parsers_file`, and the multiline
/// filter that names it, in the file a task definition's `config-file-value`
/// points to. The example's sample log arrives line by line, as Docker
/// sends it, and reaches CloudWatch as three events, the trace joined and
/// redacted.
#[test]
fn aws_s_custom_multiline_parser_example() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let parsers = crate::support::TempPath::unique_with(
        "parsers_multiline",
        "conf",
        r#"[MULTILINE_PARSER]
    name          multiline-regex-test
    type          regex
    flush_timeout 1000
    #
    # rules |   state name  | regex pattern                  | next state
    # ------|---------------|--------------------------------------------
    rule      "start_state"   "/(Dec \d+ \d+\:\d+\:\d+)(.*)/"  "cont"
    rule      "cont"          "/^\s+at.*/"                     "cont"
"#,
    );
    let extra = extra_conf(&format!(
            "[SERVICE]\n    flush                 1\n    log_level             info\n    parsers_file          {}\n\n[FILTER]\n    name                  multiline\n    match                 *\n    multiline.key_content log\n    multiline.parser      multiline-regex-test\n",
            parsers.arg()
        ),
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    let sample = [
        "single line...",
        "Dec 14 06:41:08 Exception in thread \"main\" java.lang.RuntimeException: Something has gone wrong, aborting! GET /pay?token=t0psecret",
        "    at com.myproject.module.MyProject.badMethod(MyProject.java:22)",
        "    at com.myproject.module.MyProject.oneMoreMethod(MyProject.java:18)",
        "    at com.myproject.module.MyProject.anotherMethod(MyProject.java:14)",
        "    at com.myproject.module.MyProject.someMethod(MyProject.java:10)",
        "    at com.myproject.module.MyProject.main(MyProject.java:6)",
        "another line...",
    ];
    let lines: Vec<(&str, &str)> = sample.iter().map(|l| ("stdout", *l)).collect();
    send_app(&addresses, &lines);
    let dump = stop_once_delivered(sidecar, &moto, "the sample in CloudWatch", |d| {
        d.events.len() >= 3
    });

    let logs = app_logs(&dump);
    let trace = [
        "Dec 14 06:41:08 Exception in thread \"main\" java.lang.RuntimeException: Something has gone wrong, aborting! GET /pay?token=REDACTED",
        "    at com.myproject.module.MyProject.badMethod(MyProject.java:22)",
        "    at com.myproject.module.MyProject.oneMoreMethod(MyProject.java:18)",
        "    at com.myproject.module.MyProject.anotherMethod(MyProject.java:14)",
        "    at com.myproject.module.MyProject.someMethod(MyProject.java:10)",
        "    at com.myproject.module.MyProject.main(MyProject.java:6)",
    ]
    .join("\n");
    assert_eq!(
        logs,
        ["single line...", trace.as_str(), "another line..."],
        "{:#?}",
        dump.events
    );
}

/// A `[MULTILINE_PARSER]` of `type endswith`: lines that end with `\`
/// continue, the first that does not ends the message, and the lines are
/// joined as Fluent Bit's multiline filter joins them with
/// `multiline.key_content`, without a separator.
#[test]
fn an_endswith_multiline_parser_joins_continued_lines() {
    let Peers {
        moto,
        agent,
        addresses,
    } = Peers::start();
    let extra = extra_conf(
        "[MULTILINE_PARSER]\n    name          continued\n    type          endswith\n    match_string  \\\n    negate        true\n\n[FILTER]\n    name                  multiline\n    match                 *\n    multiline.key_content log\n    multiline.parser      continued\n",
    );
    let sidecar = start_app_task(&moto, &agent, &addresses, &extra);
    send_app(
        &addresses,
        &[
            ("stdout", "GET /a?token=t0psecret \\"),
            ("stdout", "and more \\"),
            ("stdout", "end"),
            ("stdout", "alone"),
        ],
    );
    let dump = stop_once_delivered(sidecar, &moto, "both messages", |d| d.events.len() >= 2);
    let logs = app_logs(&dump);
    assert_eq!(
        logs,
        ["GET /a?token=REDACTED \\and more \\end", "alone"],
        "{:#?}",
        dump.events
    );
}

/// A `[FILTER] multiline` for Java stack traces (AWS's FireLens multiline
/// example, with a built-in parser): served by Sluice's joiner, and refused
/// when Sluice's `[multiline]` leaves Java out.
#[test]
fn a_multiline_filter_is_served_by_sluices_joiner() {
    let addresses = Addresses::pick();
    let extra = extra_conf("[FILTER]\n    name                  multiline\n    match                 app-firelens*\n    multiline.key_content log\n    multiline.parser      java\n",
    );
    let mut spec = spec(
        &addresses,
        8877,
        json!({"app": {"Name": "cloudwatch_logs", "region": "us-east-1", "log_group_name": "/ecs/app", "log_stream_prefix": "p-"}}),
    );
    spec["include"] = json!([extra.arg()]);
    let conf = render_firelens_config(&spec);
    let check = |env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("check-config")
            .arg(&conf)
            .envs(env.iter().copied())
            .output()
            .expect("sluice runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = check(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    let line = format!(
        "  multiline java ({}:1): joined by Sluice's [multiline] joiner, in every container's application lines\n",
        extra.arg()
    );
    assert!(stdout.contains(&line), "{stdout}");
    let (code, _, stderr) = check(&[("SLUICE_MULTILINE_RULES", "python,go")]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("{}:1: [FILTER] multiline multiline.parser java: Sluice's multiline joiner does not join java traces here (multiline.enabled is false or multiline.rules leaves java out)", extra.arg())),
        "{stderr}"
    );
    // `run` refuses it too, before it listens.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .env("SLUICE_FIRELENS_CONFIG", conf.arg())
        .env("SLUICE_MULTILINE_ENABLED", "false")
        .output()
        .expect("sluice runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[FILTER] multiline multiline.parser java: Sluice's multiline joiner does not join java traces here"), "{stderr}");
}

/// A forward input with `security.users`, `Shared_Key`, `Self_Hostname`
/// and `unix_perm`: a TCP client must log in as a user (a wrong password is
/// refused and the connection closed), the handshake names the configured
/// host, and the unix socket has the configured mode.
#[test]
fn forward_users_must_log_in() {
    use std::os::unix::fs::PermissionsExt;
    let addresses = Addresses::pick();
    let (host, port) = addresses.tcp.rsplit_once(':').unwrap();
    let conf = TempPath::unique_with(
        "users",
        "conf",
        &format!(
            "[INPUT]\n    Name forward\n    Listen {host}\n    Port {port}\n    Shared_Key k3y\n    security.users alice pa55 word\n    Self_Hostname router-1\n\n[INPUT]\n    Name forward\n    unix_path {}\n    unix_perm 0660\n\n[OUTPUT]\n    Name stdout\n    Match *\n    Format json_lines\n",
            addresses.unix.display()
        ),
    );
    let sidecar = Sidecar::start_at(
        &addresses,
        &[],
        &[],
        &[("SLUICE_FIRELENS_CONFIG", &conf.arg())],
        &[],
    );
    let mode = std::fs::metadata(&addresses.unix)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o660);
    let replies =
        crate::support::client_with("users", &addresses.tcp, &["k3y", "alice", "pa55 word"]);
    assert_eq!(
        replies,
        [
            r#"{"attempt": "wrong", "auth_salt_bytes": 16, "pong_ok": false, "reason": "username/password mismatch"}"#,
            r#"{"attempt": "right", "auth_salt_bytes": 16, "pong_ok": true, "reason": ""}"#,
            r#"{"ack": {"ack": "u1"}, "attempt": "right"}"#,
        ]
    );
    let line: Value = serde_json::from_str(&sidecar.lines(1)[0]).unwrap();
    assert_eq!(line["log"], "after login");
    // Neither the key nor the password is in Sluice's own log.
    let logs = sidecar.logs.lock().expect("lock").join("\n");
    assert!(!logs.contains("k3y") && !logs.contains("pa55"), "{logs}");
}
