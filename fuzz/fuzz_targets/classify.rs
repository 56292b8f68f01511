//! Any bytes as a log line: classification, redaction, route keys and JSON
//! output must never panic, and whatever is written must be valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_parser::{decode_line, Classified, Classifier, QueryMode, Redactor, RouteTable};

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static CLASSIFIER: Classifier = Classifier::new();
    }
    let line = decode_line(data);
    CLASSIFIER.with(|classifier| match classifier.classify(&line) {
        Classified::Access(mut record) => {
            Redactor::new(QueryMode::Redact).redact_record(&mut record);
            let _ = RouteTable::new().route_key(&record);
            let mut out = String::from("{");
            record.write_json_members(&mut out);
            out.push('}');
            assert!(out.len() >= 2);
        }
        Classified::App(text) => {
            let _ = Redactor::new(QueryMode::Redact).redact_text(text);
        }
    });
});
