//! Docker and FireLens records: reassembling lines that Docker split.
//!
//! Docker's fluentd driver splits lines longer than 16 KiB into partial
//! messages (shared/specs.md §8): every part carries `partial_message:
//! "true"`, the same `partial_id`, a `partial_ordinal` counting from 1, and
//! `partial_last: "true"` on the final part. [`PartialAssembler`] joins them
//! back into one event, within a size cap and a timeout, so that a lost last
//! part or an endless line cannot hold memory forever.

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::Event;
use crate::fields::Record;

/// The keys Docker adds to split lines.
const PARTIAL_KEYS: [&str; 4] = [
    "partial_message",
    "partial_id",
    "partial_ordinal",
    "partial_last",
];

/// Joins Docker's partial messages; sans-I/O (the caller passes the clock).
#[derive(Debug)]
pub struct PartialAssembler {
    groups: HashMap<(Arc<str>, String), Group>,
    /// A joined line longer than this is emitted in pieces of this size.
    max_bytes: usize,
    /// A group with no new part for this long is emitted as it is.
    timeout_ns: i64,
}

#[derive(Debug)]
struct Group {
    /// The first part, whose metadata the joined event keeps.
    event: Event,
    log: String,
    last_part_ns: i64,
}

impl PartialAssembler {
    pub fn new(max_bytes: usize, timeout_ns: i64) -> PartialAssembler {
        PartialAssembler {
            groups: HashMap::new(),
            max_bytes: max_bytes.max(1),
            timeout_ns,
        }
    }

    /// Lines being assembled.
    pub fn pending(&self) -> usize {
        self.groups.len()
    }

    /// Takes one event; appends to `ready` the events that are complete
    /// now: the event itself when it is not a part, a joined line when this
    /// was the last part, a piece when the line outgrew the cap, or nothing.
    /// (The caller's `ready` is reused: most events are not parts, and a
    /// `Vec` per event would be an allocation per event.)
    pub fn push(&mut self, event: Event, now_ns: i64, ready: &mut Vec<Event>) {
        let Some(partial_id) = partial_id(&event.record) else {
            ready.push(event);
            return;
        };
        let last = event.record.get_str("partial_last") == Some("true");
        let part = event.record.get_str("log").unwrap_or_default().to_string();
        let key = (event.tag.clone(), partial_id);
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            // Held until the last part: not with the rest of its frame.
            event: Event {
                record: event.record.detached(),
                ..event
            },
            log: String::new(),
            last_part_ns: now_ns,
        });
        group.log.push_str(&part);
        group.last_part_ns = now_ns;
        while group.log.len() > self.max_bytes {
            let cut = floor_char_boundary(&group.log, self.max_bytes);
            let rest = group.log.split_off(cut);
            ready.push(piece(
                &group.event,
                std::mem::replace(&mut group.log, rest),
                false,
            ));
        }
        if last {
            if let Some(group) = self.groups.remove(&key) {
                ready.push(piece(&group.event, group.log, true));
            }
        }
    }

    /// Emits, as they are, the groups that waited longer than the timeout.
    pub fn expire(&mut self, now_ns: i64) -> Vec<Event> {
        let timeout = self.timeout_ns;
        let expired: Vec<(Arc<str>, String)> = self
            .groups
            .iter()
            .filter(|(_, g)| now_ns.saturating_sub(g.last_part_ns) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        self.take(expired)
    }

    /// Emits every group as it is (at shutdown).
    pub fn flush(&mut self) -> Vec<Event> {
        let all: Vec<(Arc<str>, String)> = self.groups.keys().cloned().collect();
        self.take(all)
    }

    fn take(&mut self, mut keys: Vec<(Arc<str>, String)>) -> Vec<Event> {
        keys.sort();
        keys.into_iter()
            .filter_map(|k| self.groups.remove(&k))
            .map(|g| piece(&g.event, g.log, false))
            .collect()
    }
}

fn partial_id(record: &Record) -> Option<String> {
    if record.get_str("partial_message") != Some("true") {
        return None;
    }
    Some(record.get_str("partial_id").unwrap_or_default().to_string())
}

/// An event with `log` as its text. A complete line loses the partial keys;
/// an incomplete piece keeps `partial_message` and `partial_id`, so readers
/// can tell and join it.
fn piece(first: &Event, log: String, complete: bool) -> Event {
    let mut record = first.record.clone();
    for key in PARTIAL_KEYS {
        if complete || key == "partial_ordinal" || key == "partial_last" {
            record.remove(key);
        }
    }
    record.insert("log", log);
    Event {
        tag: first.tag.clone(),
        time_ns: first.time_ns,
        record,
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i.max(1)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};

    use super::*;

    fn push(a: &mut PartialAssembler, event: Event, now_ns: i64) -> Vec<Event> {
        let mut ready = Vec::new();
        a.push(event, now_ns, &mut ready);
        ready
    }

    fn part(id: &str, ordinal: u32, last: bool, log: &str) -> Event {
        let Json::Object(record) = json!({
            "log": log, "container_id": "c1", "source": "stdout",
            "partial_message": "true", "partial_id": id,
            "partial_ordinal": ordinal.to_string(), "partial_last": if last { "true" } else { "false" },
        }) else {
            unreachable!()
        };
        Event {
            tag: "app".into(),
            time_ns: 5,
            record: record.into(),
        }
    }

    fn logs(events: &[Event]) -> Vec<&str> {
        events
            .iter()
            .map(|e| e.record.get_str("log").unwrap())
            .collect()
    }

    #[test]
    fn joins_parts_and_passes_whole_lines_through() {
        let mut a = PartialAssembler::new(1 << 20, 1_000);
        assert!(push(&mut a, part("x", 1, false, "aaa"), 0).is_empty());
        assert!(push(&mut a, part("y", 1, false, "111"), 0).is_empty());
        let whole = Event {
            tag: "app".into(),
            time_ns: 1,
            record: Record::default(),
        };
        assert_eq!(push(&mut a, whole.clone(), 0), [whole]);
        assert!(push(&mut a, part("x", 2, false, "bbb"), 0).is_empty());
        let done = push(&mut a, part("x", 3, true, "ccc"), 0);
        assert_eq!(
            Json::Object(done[0].record.to_json()),
            json!({"log": "aaabbbccc", "container_id": "c1", "source": "stdout"})
        );
        assert_eq!(a.pending(), 1);
        assert_eq!(
            logs(&push(&mut a, part("y", 2, true, "222"), 0)),
            ["111222"]
        );
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn size_cap_emits_marked_pieces_and_loses_nothing() {
        let mut a = PartialAssembler::new(4, 1_000);
        let out = push(&mut a, part("x", 1, false, "abcdefghij"), 0);
        assert_eq!(logs(&out), ["abcd", "efgh"]);
        assert_eq!(out[0].record.get_str("partial_id"), Some("x"));
        assert!(out[0].record.get("partial_ordinal").is_none());
        assert_eq!(logs(&push(&mut a, part("x", 2, true, "k"), 0)), ["ijk"]);
    }

    #[test]
    fn timeout_and_flush_emit_incomplete_groups() {
        let mut a = PartialAssembler::new(1 << 20, 1_000);
        push(&mut a, part("x", 1, false, "old"), 0);
        push(&mut a, part("y", 1, false, "new"), 900);
        let expired = a.expire(1_000);
        assert_eq!(logs(&expired), ["old"]);
        assert_eq!(expired[0].record.get_str("partial_message"), Some("true"));
        assert_eq!(logs(&a.flush()), ["new"]);
        assert_eq!(a.pending(), 0);
    }
}
