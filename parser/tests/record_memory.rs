//! An access record frees every value that owns memory, and only those:
//! its dedicated fields are dropped by a mask of the slots that may own
//! memory (see `Known` in record.rs), so a slot left out of the mask would
//! leak. This binary counts the bytes its thread holds to tell.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sluice_parser::{Classified, Classifier, Field, QueryMode, Redactor, Value};

struct Counting;

thread_local! {
    // Bytes allocated and not yet freed by this thread.
    static HELD: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize) {
    // `try_with`: the allocator also runs while thread locals are torn down.
    let _ = HELD.try_with(|held| held.set(held.get() + bytes));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn held() -> isize {
    HELD.with(Cell::get)
}

const DEFAULT_LINE: &str = r#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations/42?token=s3cret HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;

// Escaped text: the parser unescapes it into values of their own.
const JSON_LINE: &str = r#"{"start_time":"2016-04-15T20:17:00.310Z","method":"GET","path":"/a\u0042c?token=x","response_code":200,"user_agent":"say \"hi\"","x-custom":"t\u00e9"}"#;

#[test]
fn owned_values_are_freed_and_borrowed_ones_cost_nothing() {
    let classifier = Classifier::new();
    let redactor = Redactor::new(QueryMode::Redact);

    // Warm up: anything built once (lazy statics, the classifier's caches).
    for line in [DEFAULT_LINE, JSON_LINE] {
        let Classified::Access(mut record) = classifier.classify(line) else {
            panic!("not an access line: {line}");
        };
        redactor.redact_record(&mut record);
        drop(record.into_owned());
    }

    let before = held();
    let mut classified = Classified::App("");
    for round in 0..100 {
        for line in [DEFAULT_LINE, JSON_LINE] {
            // Into a value held across lines, as the sidecar and the
            // benchmarks classify: the previous record is dropped here.
            classifier.classify_into(line, &mut classified);
            let Classified::Access(record) = &mut classified else {
                panic!("not an access line: {line}");
            };
            if round % 2 == 0 {
                // Redaction changes the path in place.
                assert_eq!(redactor.redact_record(record), 1);
            }
            if round % 3 == 0 {
                // A value stored over one that owns memory frees it.
                record.set(Field::UserAgent, Some(Value::Str("agent".into())));
                record.set(Field::Path, None);
            }
            if round % 5 == 0 {
                let owned = record.clone().into_owned();
                assert_eq!(owned, *record);
            }
        }
    }
    drop(classified);
    assert_eq!(held(), before);

    let Classified::Access(record) = classifier.classify(JSON_LINE) else {
        panic!("not an access line");
    };
    assert_eq!(record.str(Field::Path), Some("/aBc?token=x"));
    assert_eq!(record.str(Field::UserAgent), Some("say \"hi\""));
}
