//! Any text as an Envoy format string, then as a line of that format: the
//! compiler returns an error or a format, and parsing never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_parser::Format;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // First line: the format; the rest: a line to parse with it.
    let (format, line) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(format) = Format::compile("fuzz", format) {
        let _ = format.parse(line);
    }
});
