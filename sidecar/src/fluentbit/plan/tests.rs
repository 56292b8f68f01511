use super::*;
use crate::fluentbit::tests::plan_of;
use std::time::Duration;

fn read(conf: &str) -> Result<DropIn, Vec<String>> {
    plan_of(conf).map_err(|errors| {
        errors
            .iter()
            .map(|e| {
                // Without the temp file's name: `line N: message`.
                let line = e.key.rsplit(':').next().unwrap_or_default();
                format!("line {line}: {}", e.message)
            })
            .collect()
    })
}

/// A plan's notes without the `file:line: ` each starts with.
fn notes_without_place(p: &DropIn) -> Vec<&str> {
    p.notes
        .iter()
        .map(|n| n.split_once(": ").map_or(n.as_str(), |(_, rest)| rest))
        .collect()
}

/// As the agent renders it for awsvpc, with a cloudwatch_logs output.
const GENERATED: &str = "
[INPUT]
    Name forward
    Mem_Buf_Limit 25MB
    unix_path /var/run/fluent.sock

[INPUT]
    Name forward
    Listen 127.0.0.1
    Port 24224

[INPUT]
    Name tcp
    Tag firelens-healthcheck
    Listen 127.0.0.1
    Port 8877

[FILTER]
    Name   grep
    Match app-firelens*
    Exclude log ^DEBUG

[FILTER]
    Name record_modifier
    Match *
    Record ecs_cluster prod
    Record ecs_task_arn arn:aws:ecs:us-east-1:123456789012:task/prod/abc
    Record ecs_task_definition orders:7

[OUTPUT]
    Name null
    Match firelens-healthcheck

[OUTPUT]
    Name cloudwatch_logs
    Match app-firelens*
    auto_create_group true
    log_group_name /ecs/orders
    log_retention_days 14
    log_stream_prefix app/
    region us-east-1
    retry_limit 2
";

#[test]
fn the_generated_configuration() {
    let p = read(GENERATED).unwrap();
    assert_eq!(
        p.forward,
        [
            ForwardInput::Unix("/var/run/fluent.sock".into()),
            ForwardInput::Tcp("127.0.0.1:24224".parse().unwrap())
        ]
    );
    assert_eq!(p.health_checks, ["127.0.0.1:8877".parse().unwrap()]);
    assert_eq!(p.filters.len(), 2);
    assert_eq!(p.outputs.len(), 2);
    assert_eq!(
        p.connection,
        Some(Connection {
            region: "us-east-1".into(),
            endpoint: None,
            role_arn: None,
            external_id: None,
            sts_endpoint: None
        })
    );
    let OutputKind::CloudWatch(cw) = &p.outputs[1].kind else {
        panic!("a CloudWatch output")
    };
    assert_eq!(cw.group.describe(), "/ecs/orders");
    assert_eq!(cw.stream.describe(), "app/<tag>");
    assert!(cw.create_group && cw.create_stream);
    assert_eq!(cw.retention_days, Some(14));
    let notes = notes_without_place(&p);
    assert_eq!(
        notes,
        [
            "[INPUT] forward Mem_Buf_Limit does not apply: Sluice bounds what it holds with limits.memory, and takes frames of any mode up to 16 MiB",
            "[OUTPUT] cloudwatch_logs retry_limit does not apply: Sluice retries without a limit: an accepted event is never given up",
        ]
    );
}

/// AWS's out-of-memory prevention example on the generated configuration:
/// the forward inputs declared again, with filesystem buffering, which
/// puts the spool in `storage.path`.
#[test]
fn inputs_declared_again_with_filesystem_storage() {
    let conf = format!(
        "{GENERATED}
[SERVICE]
    storage.path  /var/log/flb-storage/
    storage.max_chunks_up 25

[INPUT]
    Name forward
    unix_path /var/run/fluent.sock
    storage.type filesystem

[INPUT]
    Name forward
    Listen 127.0.0.1
    Port 24224
    storage.type filesystem
"
    );
    let p = read(&conf).unwrap();
    assert_eq!(
        p.forward,
        [
            ForwardInput::Unix("/var/run/fluent.sock".into()),
            ForwardInput::Tcp("127.0.0.1:24224".parse().unwrap())
        ]
    );
    assert_eq!(
        p.storage,
        Some(Storage {
            path: "/var/log/flb-storage/".into(),
            total_limit: None,
            sync_full: false,
        })
    );
    assert_eq!(
        notes_without_place(&p)[2..],
        [
            "[SERVICE] storage.max_chunks_up does not apply: Sluice's settings come from its own configuration (limits.memory, the spool, batching)",
            "[INPUT] forward unix_path /var/run/fluent.sock is an earlier input's listener too: Sluice serves it once, with both inputs' options",
            "[INPUT] forward on 127.0.0.1:24224 is an earlier input's listener too: Sluice serves it once, with both inputs' options",
        ]
    );
    // Without filesystem inputs, no spool.
    assert_eq!(read(GENERATED).unwrap().storage, None);
}

/// `[SERVICE] Grace`, as `minimize-log-loss.conf` sets it, replaces
/// `shutdown.grace`.
#[test]
fn service_grace() {
    let grace = |value: &str| {
        read(&format!("{GENERATED}\n[SERVICE]\n    Grace {value}\n"))
            .map(|p| p.grace.map(|g| g.as_secs()))
    };
    assert_eq!(grace("30"), Ok(Some(30)));
    assert_eq!(grace("-1"), Ok(Some(86_400)));
    assert_eq!(grace("0"), Ok(Some(1)));
    for wrong in ["-2", "30s", "soon"] {
        assert_eq!(
            grace(wrong),
            Err(vec![format!(
                "line 44: [SERVICE] Grace {wrong:?} is not a number of seconds (or -1, until everything is sent)"
            )])
        );
    }
    assert_eq!(read(GENERATED).unwrap().grace, None);
}

/// `[SERVICE] Flush` replaces `cloudwatch.flush_interval`.
#[test]
fn service_flush() {
    let flush = |value: &str| {
        read(&format!("{GENERATED}\n[SERVICE]\n    Flush {value}\n"))
            .map(|p| p.flush.map(|f| f.as_millis()))
    };
    assert_eq!(flush("5"), Ok(Some(5000)));
    assert_eq!(flush("0.25"), Ok(Some(250)));
    for wrong in ["0", "-1", "soon", "7200"] {
        assert_eq!(
            flush(wrong),
            Err(vec![format!(
                "line 44: [SERVICE] Flush {wrong:?} is not a number of seconds above 0 (at most 3600)"
            )])
        );
    }
    assert_eq!(read(GENERATED).unwrap().flush, None);
}

#[test]
fn refused_and_wrong() {
    let input = "[INPUT]\n    Name forward\n    unix_path /s\n";
    let cases: &[(&str, &str)] = &[
        ("[OUTPUT]\n    Name kinesis_firehose\n    Match app-firelens*\n    region us-west-2\n", "line 4: [OUTPUT] kinesis_firehose (Match app-firelens*) cannot be served by Sluice, which sends to CloudWatch Logs only (cloudwatch_logs, cloudwatch) or discards (null); its logs would go nowhere"),
        ("[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    log_group_name g\n    log_stream_prefix p\n", "line 4: [OUTPUT] cloudwatch_logs: 'region' is a required field"),
        ("[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region r\n    log_stream_prefix p\n", "line 4: [OUTPUT] cloudwatch_logs: 'log_group_name' is a required field"),
        ("[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region r\n    log_group_name g\n", "line 4: [OUTPUT] cloudwatch_logs: log_stream_name or log_stream_prefix is required"),
        ("[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region r\n    log_group_name g\n    log_stream_name s\n    log_stream_prefix p\n", "line 4: [OUTPUT] cloudwatch_logs: give either log_stream_name or log_stream_prefix, not both"),
        ("[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region r\n    log_group_name g\n    log_stream_prefix p\n    log_retention_days 10\n", "line 4: [OUTPUT] cloudwatch_logs: log_retention_days 10 is not a retention CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"),
        ("[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region r\n    log_group_name g\n    log_stream_prefix p\n    log_group_class COLD\n", "line 4: [OUTPUT] cloudwatch_logs: log_group_class \"COLD\" is not STANDARD or INFREQUENT_ACCESS"),
        ("[FILTER]\n    Name expect\n    Match *\n", "line 4: [FILTER] expect (Match *) is not supported by Sluice (grep, record_modifier, parser, modify, nest, rewrite_tag, aws, lua, throttle and multiline are); without it records would be changed differently than you expect"),
        ("[FILTER]\n    Name grep\n    Match *\n    Regex log a\n    Exclude log b\n    Logical_Op OR\n", "line 4: [FILTER] grep Logical_Op OR: Regex and Exclude rules cannot be combined with it, as Fluent Bit refuses them (\"Both 'regex' and 'exclude' are set\")"),
        ("[FILTER]\n    Name throttle\n    Match *\n    Rate fast\n", "line 4: [FILTER] throttle Rate \"fast\" is not a number above 0"),
        ("[FILTER]\n    Name lua\n    Match *\n", "line 4: [FILTER] lua needs call, the function to run"),
        ("[FILTER]\n    Name grep\n    Match *\n    Regex log *failure*\n", "line 4: [FILTER] grep Regex log: \"*failure*\" is not a regular expression Sluice can use: regex parse error:\n    *failure*\n    ^\nerror: repetition operator missing expression"),
        ("[INPUT]\n    Name cpu\n", "line 4: [INPUT] cpu cannot be served by Sluice, which takes Fluent Forward (forward), tcp, tail, exec and dummy"),
        ("[INPUT]\n    Name dummy\n    Copies many\n", "line 4: [INPUT] dummy Copies \"many\" is not a whole number"),
        ("[INPUT]\n    Name exec\n    Interval_Sec 5\n", "line 4: [INPUT] exec needs a Command"),
        ("[INPUT]\n    Name exec\n    Command date\n    Interval_Sec soon\n", "line 4: [INPUT] exec Interval_Sec \"soon\" is not a whole number"),
        ("[INPUT]\n    Name exec\n    Command date\n    Buf_Size 1\n", "line 4: [INPUT] exec Buf_Size \"1\" is not a size of 2 bytes or more"),
        ("[INPUT]\n    Name exec\n    Command date\n    Exit_After_Oneshot On\n", "line 4: [INPUT] exec Exit_After_Oneshot On: Sluice is a log router beside the task's containers, and does not exit when a command does"),
        ("[INPUT]\n    Name exec\n    Command date\n    Format json\n", "line 4: [INPUT] exec has no option Format Sluice serves; it takes Command, Tag, Interval_Sec, Interval_NSec, Buf_Size, Parser, Oneshot"),
        ("[INPUT]\n    Name forward\n    unix_path /other\n", "line 4: [INPUT] forward unix_path /other: Sluice serves one TCP and one unix forward input, and unix_path /s is this configuration's; its clients would find no listener"),
        ("[INPUT]\n    Name forward\n    Port 24225\n    Tag app\n", "line 4: [INPUT] forward tag app: Sluice keeps each record's own tag, so the outputs would take other records than in Fluent Bit"),
    ];
    for (conf, want) in cases {
        assert_eq!(
            read(&format!("{input}{conf}")).unwrap_err(),
            [*want],
            "{conf}"
        );
    }
    // An exec input: its default tag is its name as Fluent Bit numbers
    // inputs (the forward input is `forward.0`); no interval is 1 s.
    let p = read(&format!("{input}[INPUT]\n    Name exec\n    Command curl -s http://127.0.0.1:2020/api/v1/metrics/prometheus\n    Interval_Sec 0\n    Buf_Size 8K\n    Parser json\n    Threaded On\n[INPUT]\n    Name exec\n    Command date\n    Interval_Sec 0\n    Interval_NSec 500000000\n    Tag clock\n    Oneshot true\n")).unwrap();
    let execs: Vec<_> = p
        .exec_inputs
        .iter()
        .map(|e| {
            let parser = e.parser.as_ref().map(|p| p.name.as_str());
            (
                e.command.as_str(),
                e.tag.as_str(),
                e.interval,
                e.buf_size,
                parser,
                e.oneshot,
            )
        })
        .collect();
    assert_eq!(
        execs,
        [
            (
                "curl -s http://127.0.0.1:2020/api/v1/metrics/prometheus",
                "exec.1",
                Duration::from_secs(1),
                8000,
                Some("json"),
                false
            ),
            (
                "date",
                "clock",
                Duration::from_millis(500),
                4096,
                None,
                true
            ),
        ]
    );
    assert_eq!(
        notes_without_place(&p),
        ["[INPUT] exec Threaded does not apply: Sluice runs the command on its own runtime and bounds what it holds with limits.memory"]
    );
    // The options are typed by the configuration's layer.
    let typed = read(&format!("{input}[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region r\n    log_group_name g\n    log_stream_prefix p\n    auto_create_group maybe\n    log_retention_days a_week\n    log_groupname x\n")).unwrap_err();
    assert_eq!(typed.len(), 3, "{typed:#?}");
    assert!(typed[0].ends_with("[OUTPUT] cloudwatch_logs log_groupname: unknown key; [OUTPUT cloudwatch_logs] takes region, log_group_name, log_stream_name, log_stream_prefix, log_group_template, log_stream_template, default_log_group_name, default_log_stream_name, log_key, log_format, auto_create_group, log_group_class, new_log_group_tags, auto_create_stream, log_retention_days, endpoint, port, sts_endpoint, role_arn, external_id"), "{}", typed[0]);
    assert!(
        typed[1].ends_with(
            "[OUTPUT] cloudwatch_logs auto_create_group: expected true or false, got \"maybe\""
        ),
        "{}",
        typed[1]
    );
    assert!(
        typed[2].ends_with(
            "[OUTPUT] cloudwatch_logs log_retention_days: expected an integer, got \"a_week\""
        ),
        "{}",
        typed[2]
    );
    // Two outputs must share one client.
    let two = read(&format!("{input}[OUTPUT]\n    Name cloudwatch_logs\n    Match a*\n    region us-east-1\n    log_group_name g\n    log_stream_prefix p\n[OUTPUT]\n    Name cloudwatch\n    Match b*\n    region eu-west-1\n    log_group_name g\n    log_stream_prefix p\n")).unwrap_err();
    assert_eq!(two.len(), 1);
    assert!(
        two[0].starts_with(
            "line 10: this output's region, endpoint or role differs from the one at "
        ),
        "{}",
        two[0]
    );
    let none = read("[OUTPUT]\n    Name null\n    Match *\n").unwrap_err();
    assert_eq!(none.len(), 1);
    assert!(
        none[0].ends_with(": no [INPUT] forward: Sluice would receive nothing"),
        "{}",
        none[0]
    );
}

#[test]
fn endpoints_and_go_names() {
    let p = read("[INPUT]\n    Name forward\n    Port 24225\n[OUTPUT]\n    Name cloudwatch\n    Match *\n    region us-east-1\n    log_group_name /ecs/$(ecs_cluster)\n    log_stream_name $(tag)/x\n    endpoint logs.example.internal\n    port 8443\n    role_arn arn:aws:iam::1:role/r\n    external_id e\n    sts_endpoint sts.example.internal\n").unwrap();
    assert_eq!(
        p.forward,
        [ForwardInput::Tcp("0.0.0.0:24225".parse().unwrap())]
    );
    let c = p.connection.unwrap();
    assert_eq!(
        c.endpoint.as_deref(),
        Some("https://logs.example.internal:8443")
    );
    assert_eq!(c.role_arn.as_deref(), Some("arn:aws:iam::1:role/r"));
    assert_eq!(
        c.sts_endpoint.as_deref(),
        Some("https://sts.example.internal")
    );
    let OutputKind::CloudWatch(cw) = &p.outputs[0].kind else {
        panic!()
    };
    assert_eq!(
        cw.group.describe(),
        "/ecs/$(ecs_cluster) (else fluentbit-default)"
    );
    assert_eq!(cw.stream.describe(), "$(tag)/x (else /fluentbit-default)");
    assert!(!cw.create_group);
    let url = read("[INPUT]\n    Name forward\n[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region us-east-1\n    log_group_name g\n    log_stream_name s\n    endpoint http://127.0.0.1:4566\n").unwrap();
    assert_eq!(
        url.connection.unwrap().endpoint.as_deref(),
        Some("http://127.0.0.1:4566")
    );
    let notes = read("[INPUT]\n    Name forward\n[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region r\n    log_group_name g\n    log_stream_name s\n    net.keepalive off\n    tls.verify off\n    tls.ca_file /x\n").unwrap().notes;
    let reasons: Vec<&str> = notes
        .iter()
        .map(|n| n.split(" does not apply: ").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        reasons,
        [
            "Sluice's connections to CloudWatch are managed by the AWS SDK",
            "Sluice always verifies certificates",
            "Sluice's TLS settings come from the platform (its CA bundle, SSL_CERT_FILE)",
        ]
    );
}

#[test]
fn tag_matching() {
    let glob = |p: &str, t: &str| TagMatch::Glob(p.into()).matches(t);
    assert!(glob("*", "anything"));
    assert!(glob("app-firelens*", "app-firelens-abc"));
    assert!(!glob("app-firelens*", "envoy-firelens-abc"));
    assert!(glob("a*c*e", "abcde"));
    assert!(!glob("App*", "app"));
    assert!(glob("exact", "exact"));
    assert!(!glob("", "x"));
}

#[test]
fn parser_filters() {
    let input = "[INPUT]\n    Name forward\n    unix_path /s\n";
    let filter = "[FILTER]\n    Name parser\n    Match *\n";
    let place = Regex::new(r"at \S+:(\d+):").unwrap();
    let cases: &[(&str, &str)] = &[
        ("    Parser json\n", "line 4: [FILTER] parser needs Key_Name"),
        ("    Key_Name log\n", "line 4: [FILTER] parser needs a Parser"),
        ("    Key_Name $log['inner']\n    Parser json\n", "line 4: [FILTER] parser Key_Name \"log['inner']\": Sluice parses a top-level key, not a nested one"),
        ("    Key_Name log\n    Parser syslog-rfc5425\n", "line 4: [FILTER] parser Parser syslog-rfc5425: no such parser (Sluice knows the parsers of Fluent Bit's parsers.conf: json, docker, docker-daemon, cri, apache, apache2, apache_error, nginx, logfmt, syslog-rfc5424, syslog-rfc3164, syslog-rfc3164-local, mongodb, envoy and istio-envoy-proxy; and the json, regex, logfmt and ltsv parsers of [PARSER] sections and Parsers_File)"),
        ("    Key_Name log\n    Parser kube-custom\n", "line 4: [FILTER] parser Parser kube-custom: Fluent Bit's parsers.conf defines it for Kubernetes or kernel logs, and Sluice does not build it in; a [PARSER] section of that name defines it"),
        ("    Key_Name log\n    Parser json\n    Reserve_Data maybe\n", "line 4: [FILTER] parser Reserve_Data \"maybe\" is not On or Off"),
        ("    Key_Name log\n    Parser json\n    Merge_Log On\n", "line 4: [FILTER] parser has no option Merge_Log; it takes Key_Name, Parser, Reserve_Data, Preserve_Key"),
        ("    Key_Name log\n    Parser kv\n[PARSER]\n    Name kv\n    Format csv\n", "line 4: [FILTER] parser Parser kv: [PARSER] kv at line 9: Format \"csv\": Sluice runs json, regex, logfmt and ltsv parsers"),
        ("    Key_Name log\n    Parser odd\n[PARSER]\n    Name odd\n    Format regex\n    Regex ^(?<a>x)(?<a>y)$\n", "line 4: [FILTER] parser Parser odd: [PARSER] odd at line 9: Regex \"^(?<a>x)(?<a>y)$\" is not a regular expression Sluice can use: regex parse error:\n    ^(?<a>x)(?<a>y)$\n        ^      ^\nerror: duplicate capture group name"),
    ];
    for (options, want) in cases {
        let errors: Vec<String> = read(&format!("{input}{filter}{options}"))
            .unwrap_err()
            .into_iter()
            // The [PARSER]'s place names the temp file too.
            .map(|e| place.replace(&e, "at line $1:").into_owned())
            .collect();
        assert_eq!(errors, [*want], "{options}");
    }
    // A [PARSER] of its own, used; another not used is noted.
    let p = read(&format!("{input}{filter}    Key_Name log\n    Parser mine\n    Reserve_Data On\n    Unescape_Key On\n[PARSER]\n    Name mine\n    Format json\n    Time_Key ts\n    Time_Format %s\n[PARSER]\n    Name spare\n    Format json\n")).unwrap();
    let FilterAction::Parser(f) = &p.filters[0].action else {
        panic!("{:?}", p.filters[0]);
    };
    assert_eq!(
        (f.key_name.as_str(), f.reserve_data, f.preserve_key),
        ("log", true, false)
    );
    assert_eq!(f.parsers[0].name, "mine");
    assert_eq!(f.parsers[0].time_key, "ts");
    let notes = notes_without_place(&p);
    assert_eq!(
        notes,
        [
            "[FILTER] parser Unescape_Key does not apply: it is deprecated in Fluent Bit and does nothing",
            "[PARSER] spare is not used: no parser filter or input here names it",
        ]
    );
    // Parsers an input names are used too: a tail input's Parser_Firstline
    // and Parser_N, a tcp input's Parser.
    let p = read(&format!(
        "{input}[INPUT]\n    Name tail\n    Path /logs/app.log\n    Multiline On\n    Parser_Firstline first\n    Parser_1 cause\n[INPUT]\n    Name tcp\n    Port 5170\n    Format none\n    Parser plain\n[PARSER]\n    Name first\n    Format regex\n    Regex ^(?<time>[^ ]+) (?<message>.*)$\n[PARSER]\n    Name cause\n    Format regex\n    Regex ^Caused by: (?<cause>.*)$\n[PARSER]\n    Name plain\n    Format regex\n    Regex ^(?<log>.*)$\n[OUTPUT]\n    Name null\n    Match *\n"
    ))
    .unwrap();
    assert_eq!(notes_without_place(&p), Vec::<String>::new());
    // A parser not found among others is skipped, as Fluent Bit skips it.
    let p = read(&format!(
        "{input}{filter}    Key_Name log
    Parser nope
    Parser json
    Parser kube-custom
"
    ))
    .unwrap();
    let FilterAction::Parser(f) = &p.filters[0].action else {
        panic!("{:?}", p.filters[0]);
    };
    let names: Vec<&str> = f.parsers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["json"]);
    let notes: Vec<String> = notes_without_place(&p)
        .into_iter()
        .map(|n| place.replace(n, "at line $1:").into_owned())
        .collect();
    assert_eq!(
        notes,
        [
            "[FILTER] parser Parser nope: no such parser (Sluice knows the parsers of Fluent Bit's parsers.conf: json, docker, docker-daemon, cri, apache, apache2, apache_error, nginx, logfmt, syslog-rfc5424, syslog-rfc3164, syslog-rfc3164-local, mongodb, envoy and istio-envoy-proxy; and the json, regex, logfmt and ltsv parsers of [PARSER] sections and Parsers_File): the filter runs with its other parsers, as Fluent Bit runs it",
            "[FILTER] parser Parser kube-custom: Fluent Bit's parsers.conf defines it for Kubernetes or kernel logs, and Sluice does not build it in; a [PARSER] section of that name defines it: the filter runs with its other parsers, as Fluent Bit runs it",
        ]
    );
}

#[test]
fn multiline_filters() {
    let input = "[INPUT]\n    Name forward\n    unix_path /s\n";
    // AWS's multiline-parse-json.conf: partial messages, then JSON.
    let p = read(&format!("{input}[FILTER]\n    Name multiline\n    Match *\n    Multiline.key_content log\n    Mode partial_message\n[FILTER]\n    Name parser\n    Match *\n    Key_Name log\n    Parser json\n    Reserve_Data True\n")).unwrap();
    assert_eq!(p.filters.len(), 1);
    assert!(p.multiline_rules.is_empty());
    assert_eq!(
        notes_without_place(&p),
        ["[FILTER] multiline partial messages: Sluice always joins Docker's partial messages, before any filter"]
    );
    // Stack traces by Fluent Bit's built-in parsers: Sluice's joiner's.
    let p = read(&format!("{input}[FILTER]\n    name multiline\n    match app-firelens*\n    multiline.key_content log\n    multiline.parser go, java\n    multiline.parser python\n    flush_ms 2000\n")).unwrap();
    let rules: Vec<&str> = p.multiline_rules.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(rules, ["go", "java", "python"]);
    assert_eq!(
        notes_without_place(&p),
        ["[FILTER] multiline flush_ms does not apply: Sluice's joiner waits multiline.wait and holds at most multiline.max_size"]
    );
    let all = crate::config::load(None, std::iter::empty::<(String, String)>()).unwrap();
    assert!(check_multiline(&p, all.multiline.as_ref()).is_empty());
    let only_java = crate::config::load(
        None,
        [("SLUICE_MULTILINE_RULES".to_string(), "java".to_string())],
    )
    .unwrap();
    let errors: Vec<String> = check_multiline(&p, only_java.multiline.as_ref())
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        errors,
        [
            "[FILTER] multiline multiline.parser go: Sluice's multiline joiner does not join go traces here (multiline.enabled is false or multiline.rules leaves go out)",
            "[FILTER] multiline multiline.parser python: Sluice's multiline joiner does not join python traces here (multiline.enabled is false or multiline.rules leaves python out)",
        ]
    );
    assert_eq!(check_multiline(&p, None).len(), 3);
    // Fluent Bit's ruby parser is run as its rules say; cri is noted.
    let p = read(&format!("{input}[FILTER]\n    name multiline\n    match *\n    multiline.parser docker, cri, ruby\n")).unwrap();
    let names: Vec<&str> = p.multiline_parsers.iter().map(|(_, r)| r.name()).collect();
    assert_eq!(names, ["ruby"]);
    assert_eq!(
        notes_without_place(&p),
        [
            "[FILTER] multiline multiline.parser cri does not apply: records from Docker's fluentd driver are not CRI lines",
            "[FILTER] multiline partial messages: Sluice always joins Docker's partial messages, before any filter",
        ]
    );
    // What Sluice's joiner cannot do is refused.
    let cases: &[(&str, &str)] = &[
        ("    multiline.parser php\n", "line 4: [FILTER] multiline multiline.parser php: Sluice joins stack traces of java, python and go (and node) with its own [multiline] rules, ruby as Fluent Bit's parser does, Docker's partial messages, and [MULTILINE_PARSER]s of type regex; no [MULTILINE_PARSER] here is named php"),
        ("    multiline.key_content message\n    multiline.parser java\n", "line 4: [FILTER] multiline multiline.key_content message: Sluice joins the lines of `log`"),
        ("    mode split\n", "line 4: [FILTER] multiline mode split: Sluice joins partial messages (partial_message) and stack traces (parser)"),
        ("    multiline.parser java\n    key_pattern x\n", "line 4: [FILTER] multiline has no option key_pattern; it takes multiline.key_content, multiline.parser, mode"),
    ];
    for (options, want) in cases {
        let conf = format!("{input}[FILTER]\n    Name multiline\n    Match *\n{options}");
        assert_eq!(read(&conf).unwrap_err(), [*want], "{options}");
    }
}

/// AWS's FireLens example for stack traces of a custom format: a
/// `[MULTILINE_PARSER]` and the filter that names it.
#[test]
fn multiline_parsers_named_by_a_filter() {
    let input = "[INPUT]\n    Name forward\n    unix_path /s\n";
    let parser = "[MULTILINE_PARSER]\n    name          multiline-regex-test\n    type          regex\n    flush_timeout 1000\n    rule      \"start_state\"   \"/(Dec \\d+ \\d+\\:\\d+\\:\\d+)(.*)/\"  \"cont\"\n    rule      \"cont\"          \"/^\\s+at.*/\"                     \"cont\"\n";
    let unused = "[MULTILINE_PARSER]\n    name spare\n    type endswith\n    match_string \\\n";
    let filter = "[FILTER]\n    name                  multiline\n    match                 *\n    multiline.key_content log\n    multiline.parser      java, multiline-regex-test\n";
    let p = read(&format!("{input}{filter}{parser}{unused}")).unwrap();
    let filter_at = format!("{}:4", p.path.display());
    assert_eq!(p.multiline_rules, [(filter_at.clone(), "java".to_string())]);
    let [(at, rules)] = p.multiline_parsers.as_slice() else {
        panic!("{:?}", p.multiline_parsers);
    };
    assert_eq!(
        (at, rules.name(), rules.rule_count(), rules.wait_ns()),
        (&filter_at, "multiline-regex-test", 2, 1_000_000_000)
    );
    assert_eq!(
        rules.start("Dec 14 06:41:08 Exception in thread \"main\""),
        Some(0)
    );
    assert_eq!(
        rules.next(
            0,
            "    at com.myproject.module.MyProject.badMethod(MyProject.java:22)"
        ),
        Some(1)
    );
    assert_eq!(
        notes_without_place(&p),
        ["[MULTILINE_PARSER] spare is not used: no multiline filter here names it"]
    );
    // The joiner runs it: with the joiner off, it is refused.
    let errors: Vec<String> = check_multiline(&p, None)
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        errors,
        [
            "[FILTER] multiline multiline.parser java: Sluice's multiline joiner does not join java traces here (multiline.enabled is false or multiline.rules leaves java out)",
            "[FILTER] multiline multiline.parser multiline-regex-test: Sluice's multiline joiner, which runs it, is off (multiline.enabled is false)",
        ]
    );
    // A parser Sluice cannot run is refused where it is named; a malformed
    // one anywhere, as Fluent Bit stops on it.
    let named_spare = filter.replace("java, multiline-regex-test", "spare");
    let no_string = unused.replace("    match_string \\\n", "");
    assert_eq!(
        read(&format!("{input}{named_spare}{no_string}")).unwrap_err(),
        ["line 4: [FILTER] multiline multiline.parser spare: the [MULTILINE_PARSER] of that name cannot be served: type endswith needs a match_string"]
    );
    let spare = read(&format!("{input}{named_spare}{unused}")).unwrap();
    assert_eq!(
        spare.multiline_parsers[0].1.describe(),
        "of type endswith \"\\\\\""
    );
    let broken = parser.replace("\"cont\"\n    rule", "\"body\"\n    rule");
    assert_eq!(
        read(&format!("{input}{broken}")).unwrap_err(),
        ["line 4: [MULTILINE_PARSER] multiline-regex-test: the rule from \"start_state\" goes to state \"body\", which no rule leaves from"]
    );
}

/// AWS's EMF-over-TCP FireLens example: a tcp input whose records go to
/// CloudWatch is served as in_tcp serves it; the health check's tcp input,
/// whose tag only `null` takes, is accepted and discarded.
#[test]
fn tcp_inputs_and_the_health_check() {
    let forward = "[INPUT]\n    Name forward\n    unix_path /s\n";
    let emf = "[INPUT]\n    Name        tcp\n    Listen      0.0.0.0\n    Port        25888\n    Format      none\n    Tag         emf-ip-10-0-0-1\n\n[OUTPUT]\n    Name                cloudwatch_logs\n    Match               emf-*\n    region              us-west-2\n    log_key             log\n    log_group_name      aws-emf-ecs-firelens-example-metrics\n    log_stream_prefix   from-fluent-bit-\n    auto_create_group   true\n    log_format          json/emf\n";
    let p = read(&format!("{forward}{emf}")).unwrap();
    let [TcpInput {
        addr,
        tag,
        format,
        source_address_key: None,
        parser: None,
    }] = &p.tcp_inputs[..]
    else {
        panic!("{:?}", p.tcp_inputs)
    };
    assert_eq!(
        (*addr, tag.as_str(), format),
        (
            "0.0.0.0:25888".parse().unwrap(),
            "emf-ip-10-0-0-1",
            &TcpFormat::None {
                separator: "\n".into()
            }
        )
    );
    assert!(p.health_checks.is_empty());
    assert_eq!(
        read(&format!(
            "{forward}[INPUT]\n    Name tcp\n    Format yaml\n"
        ))
        .unwrap_err(),
        ["line 4: [INPUT] tcp Format \"yaml\" is not json or none"]
    );
    let health = "[INPUT]\n    Name tcp\n    Tag firelens-healthcheck\n    Listen 127.0.0.1\n    Port 8877\n[OUTPUT]\n    Name null\n    Match firelens-healthcheck\n";
    let p = read(&format!("{forward}{health}")).unwrap();
    assert_eq!(
        p.health_checks,
        ["127.0.0.1:8877".parse::<SocketAddr>().unwrap()]
    );
    // Also when a user's output takes every tag: the health check's
    // connection must still close after its line.
    let everything = "[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    region us-east-1\n    log_group_name g\n    log_stream_name s\n";
    let p = read(&format!("{forward}{health}{everything}")).unwrap();
    assert_eq!(
        p.health_checks,
        ["127.0.0.1:8877".parse::<SocketAddr>().unwrap()]
    );
    assert!(p.tcp_inputs.is_empty());
    // Without a Tag, Fluent Bit's (`tcp.1`: its inputs are numbered all
    // together, and the forward input is `forward.0`) and its port (5170).
    let p = read(&format!(
        "{forward}[INPUT]\n    Name tcp\n[OUTPUT]\n    Name null\n    Match tcp.1\n"
    ))
    .unwrap();
    assert_eq!(
        p.health_checks,
        ["0.0.0.0:5170".parse::<SocketAddr>().unwrap()]
    );
    let p = read(&format!("{forward}[INPUT]\n    Name tcp\n    Source_Address_Key from\n[OUTPUT]\n    Name cloudwatch_logs\n    Match tcp.*\n    region us-east-1\n    log_group_name g\n    log_stream_name s\n")).unwrap();
    assert_eq!(
        (
            p.tcp_inputs[0].tag.as_str(),
            &p.tcp_inputs[0].format,
            p.tcp_inputs[0].source_address_key.as_deref()
        ),
        ("tcp.1", &TcpFormat::Json, Some("from"))
    );
    // A Parser reads lines: Format json becomes none, as in_tcp switches
    // it, noted; a parser that is not there is an error.
    let p = read(&format!("{forward}[INPUT]\n    Name tcp\n    Parser apache\n    Separator ;\n[OUTPUT]\n    Name null\n    Match nothing\n[OUTPUT]\n    Name stdout\n    Match tcp.*\n")).unwrap();
    assert_eq!(
        p.tcp_inputs[0].format,
        TcpFormat::None {
            separator: ";".into()
        }
    );
    assert_eq!(p.tcp_inputs[0].parser.as_ref().unwrap().name, "apache");
    assert_eq!(
        notes_without_place(&p),
        ["[INPUT] tcp Parser reads lines: the input reads Format none, as Fluent Bit switches it"]
    );
    assert_eq!(
        read(&format!(
            "{forward}[INPUT]\n    Name tcp\n    Parser nope\n"
        ))
        .unwrap_err(),
        ["line 4: [INPUT] tcp Parser nope: no parser of that name"]
    );
}

#[test]
fn modify_filters() {
    let input = "[INPUT]\n    Name forward\n    unix_path /s\n";
    let p = read(&format!("{input}[FILTER]\n    Name modify\n    Match app-firelens*\n    Condition Key_exists log\n    Rename log message\n    Add service orders\n    Move_to_start message\n")).unwrap();
    let FilterAction::Modify(m) = &p.filters[0].action else {
        panic!("{:?}", p.filters[0]);
    };
    assert_eq!((m.conditions.len(), m.rules.len()), (1, 2));
    assert_eq!(
        notes_without_place(&p),
        ["[FILTER] modify Move_to_start does not apply: Sluice writes a record's keys in their sorted order"]
    );
    let errors = read(&format!(
        "{input}[FILTER]\n    Name modify\n    Match *\n    Set lonely\n    Nest a b\n"
    ))
    .unwrap_err();
    assert_eq!(
        errors,
        [
            "line 4: [FILTER] modify Set takes KEY VALUE, got \"lonely\"",
            "line 4: [FILTER] modify has no option Nest; it takes Set, Add, Remove, Remove_wildcard, Remove_regex, Rename, Hard_rename, Copy, Hard_copy, Condition",
        ]
    );
}

#[test]
fn service_http_server_is_the_admin_endpoint() {
    // AWS's health-check example for aws-for-fluent-bit.
    let aws = "[SERVICE]\n    HTTP_Server  On\n    HTTP_Listen  0.0.0.0\n    HTTP_PORT    2020\n    Health_Check On\n    HC_Errors_Count 5\n    HC_Retry_Failure_Count 5\n    HC_Period 5\n    Flush 1\n";
    let p = read(&format!("{aws}{GENERATED}")).unwrap();
    assert_eq!(p.http_server, Some("0.0.0.0:2020".parse().unwrap()));
    let health = "/api/v1/health answers from Sluice's own view of its outputs (ok, or 500 when one is stuck)";
    let service_notes: Vec<&str> = notes_without_place(&p)
        .into_iter()
        .filter(|n| n.starts_with("[SERVICE]"))
        .collect();
    assert_eq!(
        service_notes,
        [
            format!("[SERVICE] Health_Check does not apply: {health}"),
            format!("[SERVICE] HC_Errors_Count does not apply: {health}"),
            format!("[SERVICE] HC_Retry_Failure_Count does not apply: {health}"),
            format!("[SERVICE] HC_Period does not apply: {health}"),
        ]
    );
    // Fluent Bit's defaults; off, or not set, leaves admin.listen.
    let p = read(&format!("[SERVICE]\n    HTTP_Server yes\n{GENERATED}")).unwrap();
    assert_eq!(p.http_server, Some("0.0.0.0:2020".parse().unwrap()));
    let p = read(&format!(
        "[SERVICE]\n    HTTP_Server On\n    HTTP_Listen ::1\n    HTTP_Port 2021\n{GENERATED}"
    ))
    .unwrap();
    assert_eq!(p.http_server, Some("[::1]:2021".parse().unwrap()));
    let p = read(&format!(
        "[SERVICE]\n    HTTP_Server Off\n    HTTP_Port 2021\n{GENERATED}"
    ))
    .unwrap();
    assert_eq!(p.http_server, None);
    assert!(
        notes_without_place(&p).contains(&"[SERVICE] HTTP_Port does not apply: HTTP_Server is off")
    );
    assert_eq!(read(GENERATED).unwrap().http_server, None);
    // Log_Level sets Sluice's own.
    let p = read(&format!("[SERVICE]\n    Log_Level debug\n{GENERATED}")).unwrap();
    assert_eq!(
        p.log_level,
        Some(tracing::level_filters::LevelFilter::DEBUG)
    );
    assert_eq!(read(GENERATED).unwrap().log_level, None);
    // Wrong values name their key.
    for (service, error) in [
        (
            "HTTP_Server maybe",
            "line 1: [SERVICE] HTTP_Server \"maybe\" is not On or Off",
        ),
        (
            "HTTP_Server On\n    HTTP_Port 70000",
            "line 1: [SERVICE] HTTP_Port \"70000\" is not a port",
        ),
        (
            "HTTP_Server On\n    HTTP_Listen example.com",
            "line 1: [SERVICE] HTTP_Listen \"example.com\" is not an IP address",
        ),
        (
            "Log_Level loud",
            "line 1: [SERVICE] Log_Level \"loud\" is not a log level: off, error, warn, info, debug or trace",
        ),
    ] {
        assert_eq!(
            read(&format!("[SERVICE]\n    {service}\n{GENERATED}")).unwrap_err(),
            [error],
            "{service}"
        );
    }
}

/// `Record` as Fluent Bit's `SLIST_2` reads it: a value with spaces in
/// double quotes, the quotes dropped; anything but two tokens left out
/// with a note (Fluent Bit v5.1.1 logs "invalid record parameters" and
/// starts without it).
#[test]
fn record_modifier_records_as_fluent_bit_splits_them() {
    let p = read(&format!(
        "{GENERATED}[FILTER]\n    Name record_modifier\n    Match *\n    Record quoted \"value with spaces\"\n    Record single 'x y'\n    Record plain v\n    Record lonely\n"
    ))
    .unwrap();
    let FilterAction::RecordModifier(m) = &p.filters[2].action else {
        panic!("a record_modifier")
    };
    let records: Vec<(&str, &str)> = m
        .records
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    assert_eq!(records, [("quoted", "value with spaces"), ("plain", "v")]);
    let notes = notes_without_place(&p);
    assert_eq!(
        notes[2..],
        [
            "[FILTER] record_modifier Record single is left out, as Fluent Bit leaves it out (\"invalid record parameters, expects 'KEY VALUE'\"): a value with spaces goes in double quotes",
            "[FILTER] record_modifier Record lonely is left out, as Fluent Bit leaves it out (\"invalid record parameters, expects 'KEY VALUE'\"): it has no value",
        ]
    );
}

/// A forward input's handshake and socket options, as in_forward reads
/// them; no message shows a password or a key.
#[test]
fn forward_users_empty_shared_key_hostname_and_socket_mode() {
    let tcp = "[INPUT]\n    Name forward\n    Listen 0.0.0.0\n    Port 24224\n";
    let p = read(&format!("{tcp}    Empty_Shared_Key On\n    security.users alice pa ss\n    Security.Users bob b0b\n    Self_Hostname router-1\n[INPUT]\n    Name forward\n    unix_path /s\n    unix_perm 0660\n")).unwrap();
    assert_eq!(p.shared_key.as_deref(), Some(""));
    assert_eq!(
        p.forward_users,
        [
            ForwardUser {
                name: "alice".into(),
                password: "pa ss".into()
            },
            ForwardUser {
                name: "bob".into(),
                password: "b0b".into()
            },
        ]
    );
    assert_eq!(p.self_hostname.as_deref(), Some("router-1"));
    assert_eq!(p.unix_perm, Some(0o660));
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    for (options, want) in [
        (
            "    security.users alice s3cr3t\n",
            "line 1: [INPUT] forward security.users needs a Shared_Key or Empty_Shared_Key On, as in Fluent Bit",
        ),
        (
            "    Shared_Key k3y\n    security.users alice\n",
            "line 1: [INPUT] forward security.users needs a name and a password, separated by a space",
        ),
        (
            "    Empty_Shared_Key perhaps\n",
            "line 1: [INPUT] forward Empty_Shared_Key \"perhaps\" is not On or Off",
        ),
        (
            "    unix_perm rw\n",
            "line 1: [INPUT] forward unix_perm \"rw\" is not an octal file mode such as 0660",
        ),
    ] {
        let errors = read(&format!("{tcp}{options}")).unwrap_err();
        assert_eq!(errors, [want], "{options}");
        assert!(!errors[0].contains("s3cr3t") && !errors[0].contains("k3y"));
    }
}
