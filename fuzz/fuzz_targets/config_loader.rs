//! The configuration loader: any text as the TOML file, with any
//! environment. Input: the file's text, then optionally a NUL byte and
//! `KEY=VALUE` lines for the environment (so that `SLUICE_*` overrides of
//! every kind are reached too). It must never panic: a bad file is a list
//! of errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, env) = text.split_once('\0').unwrap_or((text, ""));
    let env = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()));
    match sluice::config::load(Some(file), env) {
        Ok(_) => {}
        Err(errors) => {
            // Every error names its key and says something.
            for e in errors {
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
