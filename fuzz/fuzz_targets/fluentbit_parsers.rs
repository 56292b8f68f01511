//! Any bytes as a record's value for a FireLens drop-in's parsers, which
//! run on whatever a container writes (the parser filter, the tail and exec
//! inputs): every built-in parser of Fluent Bit's `parsers.conf`, and
//! `[PARSER]` sections with lenient times, `Types` and `Decode_Field`
//! rules, must never panic. The first line, when it is a `Time_Format`
//! Sluice reads, is also tried on the rest, strictly and leniently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::fluentbit::classic::{Section, SectionKind};
use sluice::fluentbit::parsers::{parsers, Parsers};
use sluice_parser::StrpTime;

fn section(entries: &[(&str, &str)]) -> Section {
    Section {
        kind: SectionKind::Parser,
        at: "fuzz.conf:1".to_string(),
        entries: entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn all_parsers() -> Parsers {
    let sections = [
        section(&[
            ("Name", "loose_logfmt"),
            ("Format", "logfmt"),
            ("Time_Key", "t"),
            ("Time_Format", "%Y-%m-%dT%H:%M:%S.%L%z"),
            ("Time_Strict", "Off"),
            ("Types", "n:integer f:float b:bool h:hex"),
        ]),
        section(&[
            ("Name", "loose_ltsv"),
            ("Format", "ltsv"),
            ("Time_Key", "time"),
            ("Time_Format", "%b %d %H:%M:%S"),
            ("Time_Strict", "Off"),
            ("Time_Offset", "-05:30"),
            ("Types", "n:integer f:float"),
        ]),
        section(&[
            ("Name", "decoded_json"),
            ("Format", "json"),
            ("Time_Key", "time"),
            ("Time_Format", "%d/%b/%Y:%H:%M:%S %z"),
            ("Time_Keep", "On"),
            ("Decode_Field_As", "escaped_utf8 log do_next"),
            ("Decode_Field_As", "mysql_quoted q try_next"),
            ("Decode_Field", "json log"),
        ]),
        section(&[
            ("Name", "typed_regex"),
            ("Format", "regex"),
            ("Regex", r"^(?<time>\S+ \S+) (?<level>\w+) (?<n>\S*) (?<rest>.*)$"),
            ("Time_Format", "%Y-%m-%d %H:%M:%S"),
            ("Time_Strict", "Off"),
            ("Types", "n:hex level:bool"),
            ("Decode_Field_As", "escaped rest"),
        ]),
    ];
    parsers(sections.iter())
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static PARSERS: Parsers = all_parsers();
    }
    let text = String::from_utf8_lossy(data);
    let now_ms = 1_700_000_000_123;
    PARSERS.with(|all| {
        for parser in all.values().flatten() {
            let _ = parser.parse(&text, now_ms);
        }
    });
    if let Some((format, value)) = text.split_once('\n') {
        if let Ok(format) = StrpTime::new(format) {
            let _ = format.read(value, now_ms, false);
            let _ = format.read(value, now_ms, true);
        }
    }
});
