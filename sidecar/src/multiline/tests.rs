use super::*;
use proptest::prelude::*;

fn event(tag: &str, source: &str, log: &str) -> Event {
    let mut record = sluice_firelens::Record::default();
    record.insert("log", log);
    record.insert("source", source);
    Event {
        tag: tag.into(),
        time_ns: 0,
        record,
    }
}

impl Joiner {
    /// [`Joiner::push_into`] into a vector of its own.
    fn push(&mut self, event: Event, ack: Option<u64>, now_ns: i64) -> Vec<Event> {
        let mut out = Vec::new();
        self.push_into(event, ack, now_ns, &mut out);
        out
    }
}

fn all_rules() -> Rules {
    Rules::built_in(&BUILT_IN.map(str::to_string))
}

fn joiner() -> Joiner {
    Joiner::new(all_rules(), 1_000, 1 << 20, None)
}

fn logs(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.record.get_str("log").unwrap_or_default().to_string())
        .collect()
}

/// Feeds `lines` (tag, line) in order, then the wait; the events out.
fn run(j: &mut Joiner, lines: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (tag, line) in lines {
        out.extend(j.push(event(tag, "stdout", line), None, 0));
    }
    out.extend(j.expire(1_000));
    out.iter()
        .map(|e| {
            (
                e.tag.to_string(),
                e.record.get_str("log").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

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

#[test]
fn each_language_interleaved_with_another_container() {
    for trace in [&JAVA[..], &PYTHON[..], &NODE[..], &GO[..]] {
        let mut lines = vec![("app", "ordinary before")];
        for (i, line) in trace.iter().enumerate() {
            lines.push(("app", line));
            lines.push((
                "other",
                if i % 2 == 0 {
                    "other even"
                } else {
                    "other odd"
                },
            ));
        }
        lines.push(("app", "ordinary after"));
        let out = run(&mut joiner(), &lines);
        let app: Vec<&str> = out
            .iter()
            .filter(|(t, _)| t == "app")
            .map(|(_, l)| l.as_str())
            .collect();
        let joined = trace.join("\n");
        let joined = joined.trim_end();
        // Go's blank line sits inside the trace, so it stays.
        assert_eq!(
            app,
            ["ordinary before", joined, "ordinary after"],
            "{trace:?}"
        );
        let other = out.iter().filter(|(t, _)| t == "other").count();
        assert_eq!(other, trace.len());
    }
}

#[test]
fn java_joins_its_introducer_and_every_continuation() {
    let out = run(&mut joiner(), &JAVA.map(|l| ("app", l)));
    assert_eq!(out.len(), 1);
    assert!(out[0].1.starts_with("2026-11-26 10:00:00.123 ERROR"));
    assert!(out[0].1.ends_with("\t... 2 more"));
    // Without the java rules the introducer is not held.
    let mut j = Joiner::new(Rules::built_in(&["go".to_string()]), 1_000, 1 << 20, None);
    assert_eq!(run(&mut j, &JAVA.map(|l| ("app", l))).len(), 7);
}

#[test]
fn an_uncaught_exception_takes_no_introducer() {
    // The JVM's default handler prints the trace alone: the line before it
    // is some other log line.
    let lines = [
        "listening on :8080",
        "Exception in thread \"main\" java.lang.RuntimeException: boom",
        "\tat com.example.Main.main(Main.java:5)",
        "after",
    ];
    let out = run(&mut joiner(), &lines.map(|l| ("app", l)));
    let logs: Vec<&str> = out.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        logs,
        [
            "listening on :8080",
            "Exception in thread \"main\" java.lang.RuntimeException: boom\n\tat com.example.Main.main(Main.java:5)",
            "after",
        ]
    );
}

#[test]
fn python_chained_tracebacks() {
    let mut lines: Vec<&str> = PYTHON.to_vec();
    lines.extend([
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        "  File \"/app/main.py\", line 14, in <module>",
        "    log(order[\"id\"])",
        "KeyError: 'id'",
        "next ordinary line",
    ]);
    let out = run(
        &mut joiner(),
        &lines.iter().map(|l| ("app", *l)).collect::<Vec<_>>(),
    );
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].1, lines[..13].join("\n"));
    assert_eq!(out[1].1, "next ordinary line");
}

#[test]
fn conservative_an_exception_line_without_frames_is_not_joined() {
    let lines = [
        ("app", "INFO starting"),
        ("app", "java.lang.IllegalStateException: cart is empty"),
        ("app", "INFO next"),
        ("app", "Error: not a node trace"),
        ("app", "INFO done"),
    ];
    let out = run(&mut joiner(), &lines);
    assert_eq!(
        out.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        lines.map(|(_, l)| l)
    );
}

#[test]
fn a_trace_at_the_end_is_written_after_the_wait() {
    let mut j = joiner();
    assert!(!j.holds_lines());
    let mut out = Vec::new();
    for line in GO {
        out.extend(j.push(event("app", "stderr", line), None, 100));
    }
    assert!(out.is_empty());
    assert!(j.holds_lines());
    assert!(j.expire(1_099).is_empty(), "not before the wait");
    assert_eq!(logs(&j.expire(1_100)), [GO.join("\n")]);
    assert_eq!(j.held_bytes(), 0);
    assert!(!j.holds_lines());
}

#[test]
fn a_long_trace_goes_out_in_events_of_at_most_max_bytes() {
    let mut j = Joiner::new(all_rules(), 1_000, 200, None);
    let mut out = Vec::new();
    out.extend(j.push(event("app", "stdout", "panic: boom"), None, 0));
    for i in 0..40 {
        out.extend(j.push(
            event("app", "stdout", &format!("\t/app/f{i:02}.go:1 +0x1")),
            None,
            0,
        ));
    }
    out.extend(j.flush());
    let texts = logs(&out);
    assert!(texts.len() > 1);
    assert!(texts.iter().all(|t| t.len() <= 200), "{texts:?}");
    // Nothing lost, nothing repeated.
    assert_eq!(texts.join("\n").lines().count(), 41);
}

#[test]
fn acks_wait_for_held_lines_but_not_for_introducers() {
    let mut j = joiner();
    // An ordinary line of a frame that asked for an ack is held only until
    // the frame ends.
    assert!(j
        .push(event("app", "stdout", "INFO hi"), Some(1), 0)
        .is_empty());
    assert_eq!(j.oldest_held_ack(), Some(1));
    assert_eq!(logs(&j.release_introducers(1)), ["INFO hi"]);
    assert_eq!(j.oldest_held_ack(), None);
    // Within a frame an introducer joins the exception line after it.
    assert!(j
        .push(event("app", "stdout", JAVA[0]), Some(2), 0)
        .is_empty());
    assert!(j
        .push(event("app", "stdout", JAVA[1]), Some(2), 0)
        .is_empty());
    assert!(j
        .push(event("app", "stdout", JAVA[2]), Some(2), 0)
        .is_empty());
    // The frame ends inside the trace: its ack waits.
    assert!(j.release_introducers(2).is_empty());
    assert_eq!(j.oldest_held_ack(), Some(2));
    assert!(j
        .push(event("app", "stdout", JAVA[3]), Some(3), 0)
        .is_empty());
    let out = j.push(event("app", "stdout", "INFO after"), Some(3), 0);
    assert_eq!(logs(&out), [JAVA[..4].join("\n")]);
    assert_eq!(logs(&j.release_introducers(3)), ["INFO after"]);
    assert_eq!(j.oldest_held_ack(), None);
}

#[test]
fn held_bytes_count_against_the_budget() {
    // Two units of 1 KiB.
    let budget = Arc::new(MemoryBudget::new(2048));
    let mut j = Joiner::new(all_rules(), 1_000, 1 << 20, Some(budget.clone()));
    assert!(j
        .push(event("app", "stdout", "panic: a"), None, 0)
        .is_empty());
    assert_eq!(budget.in_use(), 1024);
    assert!(j
        .push(event("app", "stdout", "\tshort"), None, 0)
        .is_empty());
    assert_eq!(budget.in_use(), 1024);
    // A line the budget cannot hold closes the trace and goes out alone.
    let long = format!("\t{}", "x".repeat(3000));
    let out = j.push(event("app", "stdout", &long), None, 0);
    assert_eq!(logs(&out), ["panic: a\n\tshort".to_string(), long]);
    assert_eq!(budget.in_use(), 0);
}

/// A stream that closes and holds the line that closed it keeps the share
/// of the budget that line needs, no more; a line that starts nothing
/// gives the whole share back.
#[test]
fn a_stream_that_starts_again_keeps_only_the_share_its_line_needs() {
    let budget = Arc::new(MemoryBudget::new(8192));
    let mut j = Joiner::new(all_rules(), 1_000, 1 << 20, Some(budget.clone()));
    let frame = format!("\t{}", "x".repeat(2000));
    assert!(j
        .push(event("app", "stdout", "panic: a"), None, 0)
        .is_empty());
    assert!(j.push(event("app", "stdout", &frame), None, 0).is_empty());
    // 8 + 1 + 2,001 bytes: two units.
    assert_eq!(budget.in_use(), 2 << 10);
    let out = j.push(event("app", "stdout", "INFO one"), None, 0);
    assert_eq!(logs(&out), [format!("panic: a\n{frame}")]);
    assert_eq!(budget.in_use(), 1 << 10);
    let out = j.push(event("app", "stdout", "INFO two"), None, 0);
    assert_eq!(logs(&out), ["INFO one"]);
    assert_eq!(budget.in_use(), 1 << 10);
    // Another source of the same container is a stream of its own.
    assert!(j
        .push(event("app", "stderr", "INFO three"), None, 0)
        .is_empty());
    assert_eq!(budget.in_use(), 2 << 10);
    let out = j.push(event("app", "stdout", ""), None, 0);
    assert_eq!(logs(&out), ["INFO two", ""]);
    assert_eq!(budget.in_use(), 1 << 10);
    assert_eq!(logs(&j.flush()), ["INFO three"]);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn user_rules() {
    let mut rules = Rules::built_in(&[]);
    rules.user_start = Some(RegexSet::new([r"^BEGIN "]).unwrap());
    rules.user_continuation = Some(RegexSet::new([r"^\| "]).unwrap());
    let mut j = Joiner::new(rules, 1_000, 1 << 20, None);
    let out = run(
        &mut j,
        &[
            ("a", "x"),
            ("a", "BEGIN dump"),
            ("a", "| one"),
            ("a", "| two"),
            ("a", "y"),
        ],
    );
    assert_eq!(
        out.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        ["x", "BEGIN dump\n| one\n| two", "y"]
    );
}

fn state_rules(specs: &[(&str, &str, Option<&str>)], wait_ns: i64) -> Arc<StateRules> {
    let specs = specs
        .iter()
        .map(|(from, regex, to)| state_rules::RuleSpec {
            from: from.split(',').map(str::to_string).collect(),
            regex: Regex::new(regex).unwrap(),
            to: to.map(str::to_string),
        })
        .collect();
    Arc::new(StateRules::new("test", specs, wait_ns).unwrap())
}

/// AWS's FireLens example of a `[MULTILINE_PARSER]`, with its sample log.
#[test]
fn a_fluent_bit_regex_parser_joins_as_fluent_bit_does() {
    let mut rules = all_rules();
    rules.state_rules.push(state_rules(
        &[
            ("start_state", r"(Dec \d+ \d+\:\d+\:\d+)(.*)", Some("cont")),
            ("cont", r"^\s+at.*", Some("cont")),
        ],
        1_000,
    ));
    let mut j = Joiner::new(rules, 1_000, 1 << 20, None);
    let out = run(
        &mut j,
        &[
            ("a", "single line..."),
            ("a", "Dec 14 06:41:08 Exception in thread \"main\" java.lang.RuntimeException: Something has gone wrong, aborting!"),
            ("a", "    at com.myproject.module.MyProject.badMethod(MyProject.java:22)"),
            ("a", "    at com.myproject.module.MyProject.main(MyProject.java:6)"),
            ("a", "Dec 14 06:41:09 another start"),
            ("a", "    at one.more(Frame.java:1)"),
            ("a", "another line..."),
        ],
    );
    assert_eq!(
        out.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        [
            "single line...",
            "Dec 14 06:41:08 Exception in thread \"main\" java.lang.RuntimeException: Something has gone wrong, aborting!\n    at com.myproject.module.MyProject.badMethod(MyProject.java:22)\n    at com.myproject.module.MyProject.main(MyProject.java:6)",
            "Dec 14 06:41:09 another start\n    at one.more(Frame.java:1)",
            "another line...",
        ]
    );
}

/// Fluent Bit's built-in `ruby` parser, beside Sluice's own rules: the
/// messages Fluent Bit v5.1.1 made of these lines (tail's
/// `multiline.parser ruby`).
#[test]
fn fluent_bit_s_ruby_parser_joins_as_fluent_bit_does() {
    let mut rules = all_rules();
    let ruby = crate::fluentbit::multiline_parsers::MultilineParsers::default()
        .get("ruby")
        .unwrap()
        .unwrap();
    rules.state_rules.push(ruby);
    let mut j = Joiner::new(rules, 1_000, 1 << 20, None);
    let lines = [
        "before",
        "/app/models/order.rb:12:in `total': undefined method `+' for nil (NoMethodError)",
        "\tfrom /app/controllers/orders_controller.rb:8:in `show'",
        "\tfrom /usr/lib/ruby/3.2.0/benchmark.rb:311:in `realtime'",
        "Started GET \"/orders/7\"",
        "/a.rb:1:in `x': boom",
        "/b.rb:2:in `y': again",
        "\tfrom /b.rb:3:in `z'",
        "after",
    ];
    let input: Vec<(&str, &str)> = lines.iter().map(|l| ("a", *l)).collect();
    let out = run(&mut j, &input);
    assert_eq!(
        out.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        [
            "before",
            "/app/models/order.rb:12:in `total': undefined method `+' for nil (NoMethodError)\n\tfrom /app/controllers/orders_controller.rb:8:in `show'\n\tfrom /usr/lib/ruby/3.2.0/benchmark.rb:311:in `realtime'",
            "Started GET \"/orders/7\"",
            "/a.rb:1:in `x': boom",
            "/b.rb:2:in `y': again\n\tfrom /b.rb:3:in `z'",
            "after",
        ]
    );
}

#[test]
fn a_fluent_bit_parser_s_start_wins_over_a_built_in_one() {
    let mut rules = all_rules();
    rules.state_rules.push(state_rules(
        &[
            ("start_state", "^panic: ", Some("cont")),
            ("cont", "^\t", Some("cont")),
        ],
        1_000,
    ));
    let mut j = Joiner::new(rules, 1_000, 1 << 20, None);
    // Go's rules would join the goroutine line; the parser's do not.
    let out = run(
        &mut j,
        &[
            ("a", "panic: boom"),
            ("a", "\tmain.go:3"),
            ("a", "goroutine 1 [running]:"),
        ],
    );
    assert_eq!(
        out.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        ["panic: boom\n\tmain.go:3", "goroutine 1 [running]:"]
    );
}

#[test]
fn a_rule_back_to_the_start_state_writes_the_message_at_once() {
    let mut rules = Rules::built_in(&[]);
    rules.state_rules.push(state_rules(
        &[
            ("start_state", "^BEGIN", Some("body")),
            ("body", "^  ", Some("body")),
            ("body", "^END$", Some("start_state")),
            ("start_state", "^ONE$", Some("start_state")),
        ],
        1_000,
    ));
    let mut j = Joiner::new(rules, 1_000, 1 << 20, None);
    assert!(j.push(event("a", "stdout", "BEGIN"), None, 0).is_empty());
    assert!(j.push(event("a", "stdout", "  x"), None, 0).is_empty());
    // No wait: END closes it.
    assert_eq!(
        logs(&j.push(event("a", "stdout", "END"), None, 0)),
        ["BEGIN\n  x\nEND"]
    );
    // A start rule back to the start state is a message of one line.
    assert_eq!(logs(&j.push(event("a", "stdout", "ONE"), None, 0)), ["ONE"]);
    assert!(!j.holds_lines());
}

/// A `type endswith` parser with `negate`: lines ending with `\` are
/// continued, as Fluent Bit joins them for a filter with
/// `multiline.key_content`: without a separator.
#[test]
fn a_fluent_bit_endswith_parser_joins_lines_until_one_does_not_continue() {
    let mut rules = Rules::built_in(&[]);
    rules.state_rules.push(Arc::new(StateRules::terminated(
        "continued",
        state_rules::Terminator {
            text: "\\".into(),
            equal: false,
            negate: true,
        },
        1_000,
    )));
    let mut j = Joiner::new(rules, 1_000, 1 << 20, None);
    let out = run(
        &mut j,
        &[
            ("a", "alone"),
            ("a", "SELECT * \\"),
            ("a", "FROM t \\"),
            ("a", "WHERE x"),
            ("a", "after"),
        ],
    );
    assert_eq!(
        out.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        ["alone", "SELECT * \\FROM t \\WHERE x", "after"]
    );
    // An open message waits the parser's flush_timeout, then goes out.
    assert!(j.push(event("a", "stdout", "half \\"), None, 0).is_empty());
    assert_eq!(logs(&j.expire(1_000)), ["half \\"]);
    assert!(!j.holds_lines());
}

#[test]
fn a_fluent_bit_parser_waits_its_own_flush_timeout() {
    let mut rules = Rules::built_in(&[]);
    rules.user_start = Some(RegexSet::new([r"^BEGIN "]).unwrap());
    rules.user_continuation = Some(RegexSet::new([r"^\| "]).unwrap());
    rules.state_rules.push(state_rules(
        &[
            ("start_state", "^Dec ", Some("cont")),
            ("cont", "^ ", Some("cont")),
        ],
        5_000,
    ));
    let mut j = Joiner::new(rules, 1_000, 1 << 20, None);
    assert!(j
        .push(event("a", "stdout", "BEGIN dump"), None, 0)
        .is_empty());
    assert!(j.push(event("b", "stdout", "Dec 1 x"), None, 0).is_empty());
    // multiline.wait for the user's rules, flush_timeout for the parser's.
    assert_eq!(logs(&j.expire(1_000)), ["BEGIN dump"]);
    assert!(j.expire(4_999).is_empty());
    assert_eq!(logs(&j.expire(5_000)), ["Dec 1 x"]);
}

/// Lines that match no rule of any built-in set.
fn ordinary_line() -> impl Strategy<Value = String> {
    "[a-z]{1,8}( [a-z0-9=]{1,8}){0,4}"
}

proptest! {
    /// Any interleaving of ordinary lines, from any streams, comes out
    /// line by line: never two joined, none lost or repeated.
    #[test]
    fn ordinary_lines_are_never_joined(lines in proptest::collection::vec((0..3usize, ordinary_line()), 0..60)) {
        let mut j = joiner();
        let mut out = Vec::new();
        for (i, (stream, line)) in lines.iter().enumerate() {
            out.extend(j.push(event(&format!("c{stream}"), "stdout", line), None, i as i64));
        }
        out.extend(j.flush());
        let mut got: Vec<(String, String)> = out
            .iter()
            .map(|e| (e.tag.to_string(), e.record.get_str("log").unwrap_or_default().to_string()))
            .collect();
        let mut want: Vec<(String, String)> = lines
            .iter()
            .map(|(s, l)| (format!("c{s}"), l.clone()))
            .collect();
        // Per stream, the order is kept.
        for s in 0..3 {
            let tag = format!("c{s}");
            let g: Vec<&String> = got.iter().filter(|(t, _)| *t == tag).map(|(_, l)| l).collect();
            let w: Vec<&String> = want.iter().filter(|(t, _)| *t == tag).map(|(_, l)| l).collect();
            prop_assert_eq!(g, w);
        }
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }
}

/// A Forward frame (`[tag, [[time, {log, source}], ...]]`) of these lines,
/// decoded as the input decodes it: the records share the frame's text.
fn frame_events(tag: &str, lines: &[&str]) -> Vec<Event> {
    fn str8(out: &mut Vec<u8>, s: &str) {
        out.push(0xd9);
        out.push(u8::try_from(s.len()).unwrap());
        out.extend_from_slice(s.as_bytes());
    }
    let mut frame = vec![0x92];
    str8(&mut frame, tag);
    frame.push(0x90 | u8::try_from(lines.len()).unwrap());
    for line in lines {
        frame.extend_from_slice(&[0x92, 0x01, 0x82]);
        str8(&mut frame, "log");
        str8(&mut frame, line);
        str8(&mut frame, "source");
        str8(&mut frame, "stdout");
    }
    let mut codec = sluice_firelens::ForwardCodec::new(sluice_firelens::Limits::default());
    codec.feed(&frame);
    match codec.next_frame(0) {
        Ok(Some(sluice_firelens::Frame::Events { events, .. })) => events,
        other => panic!("not a frame of events: {other:?}"),
    }
}

#[test]
fn lines_held_past_their_delivery_keep_no_part_of_its_frame() {
    let lines = ["first line", "second line", "the last line, held"];
    let events = frame_events("app-firelens-t1", &lines);
    let frame_text = events[0].record.retained_text_len();
    assert!(frame_text > "the last line, held".len() + 20);
    let mut j = joiner();
    let mut out = Vec::new();
    for event in events {
        out.extend(j.push(event, None, 0));
    }
    // Each line went out when the next came, still sharing the frame.
    assert_eq!(logs(&out), ["first line", "second line"]);
    assert!(out
        .iter()
        .all(|e| e.record.retained_text_len() == frame_text));
    j.detach_held();
    j.detach_held();
    let held = j.flush();
    assert_eq!(logs(&held), ["the last line, held"]);
    let own = "log".len() + "the last line, held".len() + "source".len() + "stdout".len();
    assert_eq!(held[0].record.retained_text_len(), own);
}

#[test]
fn start_checks_without_regexes_agree_with_the_patterns() {
    // The patterns the checks stand for, as they were written before.
    let go = Regex::new(r"^(?:panic: |fatal error: )").unwrap();
    let python = Regex::new(r"^Traceback \(most recent call last\):$").unwrap();
    let java = |t: &str| JAVA_EXCEPTION.is_match(t);
    let node = |t: &str| NODE_ERROR.is_match(t);
    let lines = [
        "",
        "panic: boom",
        "panic:",
        " panic: x",
        "fatal error: all goroutines are asleep",
        "fatal error:",
        "Traceback (most recent call last):",
        "Traceback (most recent call last): ",
        "Traceback (most recent call last):\n",
        " Traceback (most recent call last):",
        "java.lang.IllegalStateException: x",
        "Exception in thread \"main\" java.lang.Error",
        "_a.BError",
        "$Proxy.XThrowable: y",
        "9a.BError",
        "é.Error",
        "Error: nope",
        "TypeError: x is not a function",
        "error: lower case",
        "2026-11-27 12:00:00 Error: later in the line",
        "{\"level\":\"error\"}",
    ];
    for line in lines {
        assert_eq!(is_go_start(line), go.is_match(line), "{line:?}");
        assert_eq!(is_python_start(line), python.is_match(line), "{line:?}");
        assert_eq!(is_java_exception(line), java(line), "{line:?}");
        assert_eq!(is_node_error(line), node(line), "{line:?}");
    }
}
