use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn errors(file: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match load(Some(file), env(vars)) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn loaded(file: &str, vars: &[(&str, &str)]) -> Config {
    match load(Some(file), env(vars)) {
        Ok(c) => c,
        Err(e) => panic!("{e:#?}"),
    }
}

#[test]
fn embedded_default() {
    let c = load(None, env(&[])).unwrap();
    assert_eq!(c.forward.listen, Some("127.0.0.1:24224".parse().unwrap()));
    assert_eq!(c.forward.unix_path, None);
    assert_eq!(c.forward.unix_mode, 0o600);
    assert_eq!(c.forward.max_connections, 1024);
    assert_eq!(c.forward.shared_key, None);
    assert_eq!(c.forward.idle_timeout, Duration::from_secs(3600));
    assert_eq!(c.output, OutputType::Stdout);
    assert_eq!(c.cloudwatch, CloudwatchSection::default());
    assert_eq!(c.cloudwatch.log_group, "/ecs/{cluster}/{container_name}");
    assert_eq!(c.cloudwatch.access_stream, "{task_id}/access");
    assert!(c.cloudwatch.auto_create);
    assert_eq!(c.cloudwatch.flush_interval.0, Duration::from_secs(1));
    assert_eq!(c.redact.redactor.mode(), QueryMode::Redact);
    assert_eq!(c.memory_limit, None);
    assert_eq!(c.shutdown_grace, Duration::from_secs(25));
    assert_eq!(c.shutdown_drain, Duration::from_secs(2));
    assert_eq!(c.spool, None);
    assert_eq!(c.sampling, None);
    assert_eq!(c.stats, Some(StatsConfig::default()));
    assert_eq!(c.firelens_config, Some(PathBuf::from(FIRELENS_CONFIG)));
    // Both listeners are loopback-only unless configured otherwise.
    assert_eq!(c.admin_listen, Some("127.0.0.1:2020".parse().unwrap()));
}

/// Every key: a value of the wrong type in the file, and in the
/// environment where text can be wrong; each is an error naming the key,
/// never the default.
#[test]
fn wrong_types_are_errors_naming_the_key() {
    // (section, key, a TOML value of the wrong type, the message)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("forward", "listen", "24224", "invalid type: integer `24224`, expected a string"),
        ("forward", "unix_path", "true", "invalid type: boolean `true`, expected a string"),
        ("forward", "unix_mode", "true", "invalid type: boolean `true`, expected an octal file mode such as \"0600\""),
        ("forward", "shared_key", "123456", "invalid type: integer `123456`, expected a string"),
        ("forward", "max_connections", "\"many\"", "invalid type: string \"many\", expected usize"),
        ("forward", "idle_timeout", "[1]", "invalid type: sequence, expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("output", "type", "1", "invalid type: integer `1`, expected a string"),
        ("file", "dir", "1", "invalid type: integer `1`, expected path string"),
        ("cloudwatch", "region", "1", "invalid type: integer `1`, expected a string"),
        ("cloudwatch", "endpoint", "1", "invalid type: integer `1`, expected a string"),
        ("cloudwatch", "log_group", "42", "invalid type: integer `42`, expected a string"),
        ("cloudwatch", "access_stream", "1", "invalid type: integer `1`, expected a string"),
        ("cloudwatch", "app_stream", "1", "invalid type: integer `1`, expected a string"),
        ("cloudwatch", "stats_stream", "1", "invalid type: integer `1`, expected a string"),
        ("cloudwatch", "auto_create", "\"yes\"", "invalid type: string \"yes\", expected a boolean"),
        ("cloudwatch", "retention_days", "\"30\"", "invalid type: string \"30\", expected i64"),
        ("cloudwatch", "flush_interval", "true", "invalid type: boolean `true`, expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("cloudwatch", "app_format", "1", "invalid type: integer `1`, expected a string"),
        ("cloudwatch", "metadata", "\"tag\"", "invalid type: string \"tag\", expected a sequence"),
        ("envoy", "containers", "\"envoy\"", "invalid type: string \"envoy\", expected a sequence"),
        ("envoy", "formats", "\"%A%\"", "invalid type: string \"%A%\", expected a sequence"),
        ("envoy", "routes", "[1]", "invalid type: integer `1`, expected a string"),
        ("redact", "mode", "1", "invalid type: integer `1`, expected a string"),
        ("redact", "allow", "\"page\"", "invalid type: string \"page\", expected a sequence"),
        ("redact", "patterns", "[1]", "invalid type: integer `1`, expected a string"),
        ("limits", "memory", "true", "invalid type: boolean `true`, expected a size such as \"64MiB\""),
        ("shutdown", "drain", "true", "invalid type: boolean `true`, expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("shutdown", "grace", "true", "invalid type: boolean `true`, expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("stats", "enabled", "\"no\"", "invalid type: string \"no\", expected a boolean"),
        ("stats", "interval", "true", "invalid type: boolean `true`, expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("stats", "namespace", "1", "invalid type: integer `1`, expected a string"),
        ("stats", "service", "1", "invalid type: integer `1`, expected a string"),
        ("stats", "dimensions", "\"service\"", "invalid type: string \"service\", expected a sequence"),
        ("stats", "metrics", "\"requests\"", "invalid type: string \"requests\", expected a sequence"),
        ("stats", "max_routes", "\"10\"", "invalid type: string \"10\", expected usize"),
        ("stats", "sketches", "\"yes\"", "invalid type: string \"yes\", expected a boolean"),
        ("admin", "listen", "2020", "invalid type: integer `2020`, expected a string"),
        ("sampling", "rate", "\"half\"", "invalid type: string \"half\", expected f64"),
        ("sampling", "slow", "true", "invalid type: boolean `true`, expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("spool", "dir", "1", "invalid type: integer `1`, expected a string"),
        ("spool", "max_size", "true", "invalid type: boolean `true`, expected a size such as \"64MiB\""),
        ("spool", "segment_size", "true", "invalid type: boolean `true`, expected a size such as \"64MiB\""),
        ("spool", "fsync", "true", "invalid type: boolean `true`, expected a string"),
        ("firelens", "config", "1", "invalid type: integer `1`, expected a string"),
        ("multiline", "enabled", "\"yes\"", "invalid type: string \"yes\", expected a boolean"),
        ("multiline", "rules", "\"java\"", "invalid type: string \"java\", expected a sequence"),
        ("multiline", "wait", "true", "invalid type: boolean `true`, expected a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("multiline", "max_size", "true", "invalid type: boolean `true`, expected a size such as \"64MiB\""),
        ("multiline", "start", "\"^x\"", "invalid type: string \"^x\", expected a sequence"),
        ("multiline", "continuation", "[1]", "invalid type: integer `1`, expected a string"),
    ];
    let mut covered = Vec::new();
    for (section, key, value, message) in cases {
        let got = errors(&format!("[{section}]\n{key} = {value}\n"), &[]);
        assert_eq!(
            got,
            [format!("{section}.{key}: {message}")],
            "{section}.{key}"
        );
        covered.push(format!("{section}.{key}"));
    }
    assert_eq!(covered, every_key(), "every key has a case");
}

/// Every key's name, `section.key`, in declaration order.
fn every_key() -> Vec<String> {
    sections::SECTION_NAMES
        .iter()
        .flat_map(|s| {
            sections::keys_of(s)
                .unwrap_or_default()
                .iter()
                .map(move |k| format!("{s}.{k}"))
        })
        .collect()
}

/// Every key that text can get wrong, set from the environment; and
/// every key out of its range.
#[test]
fn bad_environment_values_and_ranges_are_errors() {
    let env_cases: &[(&str, &str, &str)] = &[
        ("SLUICE_FORWARD_UNIX_MODE", "rw-------", "\"rw-------\" is not an octal file mode such as \"0600\""),
        ("SLUICE_FORWARD_MAX_CONNECTIONS", "many", "expected a non-negative integer, got \"many\""),
        ("SLUICE_FORWARD_IDLE_TIMEOUT", "soon", "\"soon\" is not a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("SLUICE_OUTPUT_TYPE", "kafka", "\"kafka\" is not one of stdout, file, cloudwatch"),
        ("SLUICE_CLOUDWATCH_AUTO_CREATE", "maybe", "expected true or false, got \"maybe\""),
        ("SLUICE_CLOUDWATCH_RETENTION_DAYS", "a month", "expected an integer, got \"a month\""),
        ("SLUICE_CLOUDWATCH_FLUSH_INTERVAL", "-1", "\"-1\" is not a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("SLUICE_CLOUDWATCH_APP_FORMAT", "xml", "\"xml\" is not one of line, json"),
        ("SLUICE_ENVOY_CONTAINERS", "[1]", "expected a TOML array of strings, got \"[1]\""),
        ("SLUICE_ENVOY_FORMATS", "[\"%A%\"", "expected a TOML array of strings, got \"[\\\"%A%\\\"\""),
        ("SLUICE_LIMITS_MEMORY", "lots", "\"lots\" is not a size such as \"64MiB\""),
        ("SLUICE_LIMITS_MEMORY", "0", "\"0\" is not a size such as \"64MiB\""),
        ("SLUICE_SHUTDOWN_GRACE", "1 fortnight", "\"1 fortnight\" is not a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        ("SLUICE_STATS_ENABLED", "yes please", "expected true or false, got \"yes please\""),
        ("SLUICE_STATS_MAX_ROUTES", "-5", "expected a non-negative integer, got \"-5\""),
        ("SLUICE_SAMPLING_RATE", "half", "expected a number, got \"half\""),
        ("SLUICE_SPOOL_FSYNC", "always", "\"always\" is not one of batch, off"),
        ("SLUICE_FORWARD_LISEN", "x", "unknown key; [forward] takes listen, unix_path, unix_mode, shared_key, max_connections, idle_timeout"),
    ];
    for (var, value, message) in env_cases {
        assert_eq!(
            errors("", &[(var, value)]),
            [format!("{var}: {message}")],
            "{var}"
        );
    }
    let range_cases: &[(&str, &str)] = &[
        ("[forward]\nlisten = \"nowhere\"", "forward.listen: \"nowhere\" is not an address such as 127.0.0.1:24224 (\"\" for no TCP listener)"),
        ("[forward]\nlisten = \"\"", "forward.listen: no listener: set forward.listen or forward.unix_path"),
        ("[forward]\nunix_mode = 0o1777", "forward.unix_mode: 1023 is not a file mode from 0 to 0o777"),
        ("[forward]\nmax_connections = 0", "forward.max_connections: 0 is not a positive number"),
        ("[forward]\nmax_connections = -1", "forward.max_connections: invalid value: integer `-1`, expected usize"),
        ("[forward]\nshared_key = \"\"", "forward.shared_key: is empty; leave it out for no handshake, or give the key"),
        ("[forward]\nidle_timeout = -1", "forward.idle_timeout: -1 is negative; expected a duration"),
        ("[output]\ntype = \"file\"", "file.dir: output.type = \"file\" needs a directory"),
        ("[cloudwatch]\nendpoint = \"localhost:5000\"", "cloudwatch.endpoint: \"localhost:5000\" is not a URL such as \"http://127.0.0.1:5000\""),
        ("[cloudwatch]\nlog_group = \"/ecs/{service}\"", "cloudwatch.log_group: \"/ecs/{service}\" uses {service}; templates take {container_name}, {task_id}, {cluster}, {tag}, {date}"),
        ("[cloudwatch]\nlog_group = \"aws/x\"", "cloudwatch.log_group: log group names must not start with \"aws/\""),
        ("[cloudwatch]\naccess_stream = \"{task_id\"", "cloudwatch.access_stream: \"{task_id\" has a '{' without '}'"),
        ("[cloudwatch]\napp_stream = \"\"", "cloudwatch.app_stream: must not be empty"),
        ("[cloudwatch]\nstats_stream = \"{x}\"", "cloudwatch.stats_stream: \"{x}\" uses {x}; templates take {container_name}, {task_id}, {cluster}, {tag}, {date}"),
        ("[cloudwatch]\nretention_days = 2", "cloudwatch.retention_days: 2 is not a retention CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"),
        ("[cloudwatch]\nflush_interval = \"0s\"", "cloudwatch.flush_interval: must be longer than 0"),
        ("[cloudwatch]\nmetadata = [\"pod\"]", "cloudwatch.metadata: \"pod\" is not a metadata field; they are kind, timestamp, tag, start_time, container_name, container_id, source, ecs_cluster, ecs_task_arn, ecs_task_definition"),
        ("[envoy]\nformats = [\"%BROKEN\"]", "envoy.formats: format 1: format string is invalid at column 8: expected '%' to close the operator\n%BROKEN\n       ^"),
        ("[envoy]\nroutes = [\"users\"]", "envoy.routes: \"users\": route template is invalid at column 1: a route template starts with '/'"),
        ("[redact]\nmode = \"hide\"", "redact.mode: unknown redaction mode \"hide\": expected one of redact, drop, keep"),
        ("[limits]\nmemory = \"lots\"", "limits.memory: \"lots\" is not a size such as \"64MiB\""),
        ("[shutdown]\ndrain = \"30s\"\ngrace = \"25s\"", "shutdown.drain: 30s must be shorter than shutdown.grace (25s)"),
        ("[stats]\ninterval = \"500ms\"", "stats.interval: must be at least 1s"),
        ("[stats]\nnamespace = \"\"", "stats.namespace: must not be empty"),
        ("[stats]\ndimensions = [\"service,host\"]", "stats.dimensions: \"host\" is not a dimension; sets are comma-separated lists of service, route"),
        ("[stats]\ndimensions = []", "stats.dimensions: needs at least one dimension set"),
        ("[stats]\nmax_routes = 0", "stats.max_routes: 0 is not from 1 to 100000"),
        ("[admin]\nlisten = \"2020\"", "admin.listen: \"2020\" is not an address such as 127.0.0.1:2020 (\"\" for none)"),
        ("[sampling]\nrate = 1.5", "sampling.rate: 1.5 is not a number from 0 to 1"),
        ("[spool]\nsegment_size = \"1KiB\"", "spool.segment_size: must be at least 64KiB"),
        ("[spool]\nmax_size = \"8MiB\"", "spool.max_size: must be at least twice spool.segment_size (8388608 bytes)"),
        ("[multiline]\nrules = [\"cobol\"]", "multiline.rules: \"cobol\" is not a built-in rule set; they are java, python, node, go"),
        ("[multiline]\nstart = [\"^x\"]", "multiline.start: multiline.start and multiline.continuation go together: give both or neither"),
        ("[multiline]\nwait = \"0s\"", "multiline.wait: must be longer than 0"),
    ];
    for (file, want) in range_cases {
        assert_eq!(errors(file, &[]), [*want], "{file}");
    }
    let metrics = errors("[stats]\nmetrics = [\"p42\"]", &[]);
    assert_eq!(metrics.len(), 1);
    assert!(metrics[0].starts_with("stats.metrics: \"p42\" is not a figure; they are requests,"));
    let patterns = errors("[redact]\npatterns = [\"(\"]", &[]);
    assert_eq!(patterns.len(), 1);
    assert!(patterns[0].starts_with("redact.patterns: not a valid regular expression"));
}

/// Every key, overridden from the environment over a file that sets it
/// otherwise.
#[test]
fn the_environment_overrides_every_key() {
    let file = r#"
        [forward]
        listen = "0.0.0.0:1"
        unix_mode = "0600"
        max_connections = 2
        [cloudwatch]
        log_group = "/file"
        auto_create = true
        [stats]
        max_routes = 5
    "#;
    let vars = [
        ("SLUICE_FORWARD_LISTEN", "127.0.0.1:9999"),
        ("SLUICE_FORWARD_UNIX_PATH", "/tmp/f.sock"),
        ("SLUICE_FORWARD_UNIX_MODE", "0660"),
        ("SLUICE_FORWARD_SHARED_KEY", "123456"),
        ("SLUICE_FORWARD_MAX_CONNECTIONS", "7"),
        ("SLUICE_FORWARD_IDLE_TIMEOUT", "10m"),
        ("SLUICE_OUTPUT_TYPE", "cloudwatch"),
        ("SLUICE_FILE_DIR", "/tmp/out"),
        ("SLUICE_CLOUDWATCH_REGION", "eu-west-1"),
        ("SLUICE_CLOUDWATCH_ENDPOINT", "http://127.0.0.1:5000"),
        ("SLUICE_CLOUDWATCH_LOG_GROUP", "/env/{cluster}"),
        ("SLUICE_CLOUDWATCH_ACCESS_STREAM", "a/{task_id}"),
        ("SLUICE_CLOUDWATCH_APP_STREAM", "b/{task_id}"),
        ("SLUICE_CLOUDWATCH_STATS_STREAM", "c/{task_id}"),
        ("SLUICE_CLOUDWATCH_AUTO_CREATE", "false"),
        ("SLUICE_CLOUDWATCH_RETENTION_DAYS", "30"),
        ("SLUICE_CLOUDWATCH_FLUSH_INTERVAL", "500ms"),
        ("SLUICE_CLOUDWATCH_APP_FORMAT", "json"),
        ("SLUICE_CLOUDWATCH_METADATA", "tag, container_name"),
        ("SLUICE_ENVOY_CONTAINERS", "envoy, proxy"),
        ("SLUICE_ENVOY_FORMATS", r#"["%A% %B%", "%C%,%D%"]"#),
        ("SLUICE_ENVOY_ROUTES", "/users/{id},/orders/{id}"),
        ("SLUICE_REDACT_MODE", "drop"),
        ("SLUICE_REDACT_ALLOW", "page, sort"),
        ("SLUICE_REDACT_PATTERNS", "key=(?P<secret>[a-z]+),x"),
        ("SLUICE_LIMITS_MEMORY", "32MiB"),
        ("SLUICE_SHUTDOWN_DRAIN", "3s"),
        ("SLUICE_SHUTDOWN_GRACE", "20"),
        ("SLUICE_STATS_ENABLED", "true"),
        ("SLUICE_STATS_INTERVAL", "30s"),
        ("SLUICE_STATS_NAMESPACE", "Mesh"),
        ("SLUICE_STATS_SERVICE", "orders"),
        ("SLUICE_STATS_DIMENSIONS", r#"["service,route"]"#),
        ("SLUICE_STATS_METRICS", "requests,status_5xx"),
        ("SLUICE_STATS_MAX_ROUTES", "50"),
        ("SLUICE_STATS_SKETCHES", "true"),
        ("SLUICE_ADMIN_LISTEN", "127.0.0.1:2021"),
        ("SLUICE_SAMPLING_RATE", "0.05"),
        ("SLUICE_SAMPLING_SLOW", "2s"),
        ("SLUICE_SPOOL_DIR", "/var/spool/sluice"),
        ("SLUICE_SPOOL_MAX_SIZE", "1GiB"),
        ("SLUICE_SPOOL_SEGMENT_SIZE", "16MiB"),
        ("SLUICE_SPOOL_FSYNC", "off"),
        ("SLUICE_FIRELENS_CONFIG", ""),
        ("SLUICE_MULTILINE_ENABLED", "true"),
        ("SLUICE_MULTILINE_RULES", "java,go"),
        ("SLUICE_MULTILINE_WAIT", "2s"),
        ("SLUICE_MULTILINE_MAX_SIZE", "1MiB"),
        ("SLUICE_MULTILINE_START", "^BEGIN, dump"),
        ("SLUICE_MULTILINE_CONTINUATION", "^\\| "),
    ];
    let mut named: Vec<String> = vars.iter().map(|(v, _)| v.to_string()).collect();
    named.sort();
    let mut expected: Vec<String> = every_key()
        .iter()
        .map(|k| format!("SLUICE_{}", k.replace('.', "_").to_uppercase()))
        .collect();
    expected.sort();
    assert_eq!(named, expected, "every key is overridden");

    let c = loaded(file, &vars);
    assert_eq!(c.forward.listen, Some("127.0.0.1:9999".parse().unwrap()));
    assert_eq!(c.forward.unix_path, Some(PathBuf::from("/tmp/f.sock")));
    assert_eq!(c.forward.unix_mode, 0o660);
    // A numeric secret from the environment is the string it was.
    assert_eq!(c.forward.shared_key.as_deref(), Some("123456"));
    assert_eq!(c.forward.max_connections, 7);
    assert_eq!(c.forward.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.output, OutputType::Cloudwatch);
    assert_eq!(c.file_dir, Some(PathBuf::from("/tmp/out")));
    let cw = &c.cloudwatch;
    assert_eq!(cw.region.as_deref(), Some("eu-west-1"));
    assert_eq!(cw.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(
        (cw.log_group.as_str(), cw.access_stream.as_str()),
        ("/env/{cluster}", "a/{task_id}")
    );
    assert_eq!(
        (cw.app_stream.as_str(), cw.stats_stream.as_str()),
        ("b/{task_id}", "c/{task_id}")
    );
    assert!(!cw.auto_create);
    assert_eq!(cw.retention_days, Some(30));
    assert_eq!(cw.flush_interval.0, Duration::from_millis(500));
    assert_eq!(cw.app_format, AppFormat::Json);
    assert_eq!(cw.metadata.0, ["tag", "container_name"]);
    assert_eq!(c.envoy.containers, ["envoy", "proxy"]);
    assert_eq!(c.envoy.formats.len(), 2);
    assert_eq!(c.redact.redactor.mode(), QueryMode::Drop);
    assert_eq!(c.memory_limit, Some(32 << 20));
    assert_eq!(c.shutdown_drain, Duration::from_secs(3));
    assert_eq!(c.shutdown_grace, Duration::from_secs(20));
    let stats = c.stats.expect("stats on");
    assert_eq!(stats.interval_ms, 30_000);
    assert_eq!(stats.namespace, "Mesh");
    assert_eq!(stats.service.as_deref(), Some("orders"));
    assert_eq!(stats.dimensions, [vec!["service", "route"]]);
    assert_eq!(stats.metrics, ["requests", "status_5xx"]);
    assert_eq!(stats.max_routes, 50);
    assert!(stats.sketches);
    assert_eq!(c.admin_listen, Some("127.0.0.1:2021".parse().unwrap()));
    assert_eq!(
        c.sampling,
        Some(SamplingConfig {
            rate: 0.05,
            slow_ms: Some(2000)
        })
    );
    assert_eq!(
        c.spool,
        Some(SpoolConfig {
            dir: "/var/spool/sluice".into(),
            max_size: 1 << 30,
            segment_size: 16 << 20,
            fsync: false,
        })
    );
    assert_eq!(c.firelens_config, None);
    let m = c.multiline.expect("multiline on");
    assert!(m.rules.java && m.rules.go && !m.rules.python && !m.rules.node);
    assert_eq!(m.wait, Duration::from_secs(2));
    assert_eq!(m.max_bytes, 1 << 20);
    // Not split at the comma: one pattern.
    assert_eq!(m.rules.user_start.map(|s| s.len()), Some(1));
    assert_eq!(m.rules.user_continuation.map(|s| s.len()), Some(1));
}

/// The slips issue 11 started from: each was a silent default.
#[test]
fn a_wrong_type_never_falls_back_to_the_default() {
    assert_eq!(
        errors(
            "[forward]\nshared_key = 123456\nlisten = 24224\n[cloudwatch]\nlog_group = 42\n",
            &[]
        ),
        [
            "forward.listen: invalid type: integer `24224`, expected a string",
            "forward.shared_key: invalid type: integer `123456`, expected a string",
            "cloudwatch.log_group: invalid type: integer `42`, expected a string",
        ]
    );
}

#[test]
fn a_full_file() {
    let file = r#"
        [forward]
        listen = "0.0.0.0:24224"
        unix_path = "/var/run/fluent.sock"
        unix_mode = 0o660
        shared_key = "k"
        max_connections = 64
        idle_timeout = "10m"
        [output]
        type = "file"
        [file]
        dir = "/tmp/sluice"
        [cloudwatch]
        region = "eu-west-1"
        retention_days = 30
        flush_interval = "500ms"
        [envoy]
        containers = ["envoy"]
        formats = ["%START_TIME% %RESPONSE_CODE%"]
        routes = ["/users/{id}"]
        [redact]
        mode = "drop"
        allow = ["page"]
        [limits]
        memory = "32MiB"
        [shutdown]
        drain = "3s"
        grace = "1m 30s"
        [sampling]
        rate = 1
        [spool]
        dir = "/s"
        max_size = 1073741824
        fsync = "off"
    "#;
    let c = loaded(file, &[]);
    assert_eq!(c.forward.unix_mode, 0o660);
    assert_eq!(c.forward.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.output, OutputType::File);
    assert_eq!(c.cloudwatch.retention_days, Some(30));
    assert_eq!(c.envoy.containers, ["envoy"]);
    assert_eq!(c.envoy.formats.len(), 1);
    assert_eq!(c.redact.redactor.mode(), QueryMode::Drop);
    assert_eq!(c.memory_limit, Some(32 << 20));
    assert_eq!(c.shutdown_grace, Duration::from_secs(90));
    assert_eq!(c.sampling.map(|s| s.rate), Some(1.0));
    assert_eq!(
        c.spool.map(|s| (s.max_size, s.fsync)),
        Some((1 << 30, false))
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let file = r#"
        [forward]
        lisen = "x"
        max_connections = "many"
        listen = "nowhere"
        [output]
        type = "kafka"
        [cloudwatch]
        retention_days = 2
        flush_interval = "soon"
        [metrics]
        x = 1
    "#;
    assert_eq!(
        errors(file, &[("SLUICE_STATS_ENABLED", "maybe")]),
        [
            "metrics: unknown section; the sections are forward, output, file, cloudwatch, envoy, redact, limits, shutdown, stats, admin, sampling, spool, firelens, multiline",
            "forward.lisen: unknown key; [forward] takes listen, unix_path, unix_mode, shared_key, max_connections, idle_timeout",
            "forward.max_connections: invalid type: string \"many\", expected usize",
            "output.type: \"kafka\" is not one of stdout, file, cloudwatch",
            "cloudwatch.flush_interval: \"soon\" is not a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"",
            "SLUICE_STATS_ENABLED: expected true or false, got \"maybe\"",
            "forward.listen: \"nowhere\" is not an address such as 127.0.0.1:24224 (\"\" for no TCP listener)",
            "cloudwatch.retention_days: 2 is not a retention CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
        ]
    );
}

#[test]
fn other_variables_are_not_configuration() {
    let c = loaded(
        "",
        &[("SLUICE_TEST_PYTHON", "/usr/bin/python3"), ("SLUICE", "x")],
    );
    assert_eq!(c.output, OutputType::Stdout);
}

#[test]
fn not_toml() {
    let got = errors("[forward", &[]);
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("file: not valid TOML"), "{got:?}");
    assert_eq!(
        errors("forward = 1", &[]),
        ["forward: expected a [forward] table"]
    );
}

#[test]
fn lists_from_the_environment() {
    let c = loaded(
        "",
        &[
            ("SLUICE_ENVOY_CONTAINERS", r#"["a,b", "c"]"#),
            ("SLUICE_REDACT_PATTERNS", "x{1,3}"),
            ("SLUICE_REDACT_ALLOW", ""),
        ],
    );
    assert_eq!(c.envoy.containers, ["a,b", "c"]);
    let c = loaded("", &[("SLUICE_STATS_DIMENSIONS", "service,route")]);
    // Not split: one set of two dimensions.
    assert_eq!(c.stats.unwrap().dimensions, [vec!["service", "route"]]);
}
