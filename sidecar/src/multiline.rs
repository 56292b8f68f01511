//! Stack traces as one event: application lines that continue a trace are
//! joined, per container stream (tag and source), before they are rendered.
//!
//! Docker's driver sends every line as its own record, so a Java exception
//! arrives as 5 to 50 records. The rules are conservative: a line is joined
//! only when it matches a continuation rule of the trace that is open, and
//! an ordinary line is never glued to its neighbour. Built-in rule sets:
//!
//! - `java` (and other JVM languages): an exception line (`a.b.FooException:
//!   message`, `Exception in thread "main" …`) followed by `at …` frames,
//!   `Caused by:`, `Suppressed:`, `... N more`. The line just before the
//!   exception line, from the same stream, is where logback and log4j put
//!   the message of `log.error(msg, e)`: it belongs to the event (not
//!   before `Exception in thread`, which the JVM prints alone). An
//!   exception line joins only when a frame follows it.
//! - `python`: `Traceback (most recent call last):`, the `File "…", line N`
//!   lines and their source lines, the final `Error: …` line, and chained
//!   tracebacks (`During handling of the above exception…`, `The above
//!   exception was the direct cause…`).
//! - `node`: `Error: …` (or `TypeError: …`, …) followed by `    at …` frames.
//! - `go`: `panic:` and `fatal error:` with the `goroutine N [state]:`
//!   blocks, their frames, and the blank lines between them.
//!
//! User rules add a start and a continuation pattern for other formats, and
//! a FireLens drop-in adds the `[MULTILINE_PARSER]`s its multiline filters
//! name ([`state_rules`]), each waiting its own `flush_timeout`.
//!
//! Bounded: a trace whose next line does not come is written after `wait`;
//! a trace is emitted when it reaches `max_bytes` (the rest starts a new
//! event); the bytes held count against the memory budget, and a line that
//! the budget cannot hold is not held. Sans-I/O: the caller passes the
//! clock. Lines held on behalf of a frame that asked for an ack are tracked
//! ([`Joiner::oldest_held_ack`]) so that its ack waits for them.

use std::sync::{Arc, LazyLock};

use foldhash::fast::RandomState;
use hashbrown::{Equivalent, HashMap};

use regex::{Regex, RegexSet};
use sluice_firelens::{Event, MemoryBudget, Reservation};

use crate::event::record_line;

pub mod state_rules;
pub use state_rules::StateRules;

/// The built-in rule sets, by name.
pub const BUILT_IN: [&str; 4] = ["java", "python", "node", "go"];

/// The rule sets in use.
#[derive(Clone, Debug)]
pub struct Rules {
    pub java: bool,
    pub python: bool,
    pub node: bool,
    pub go: bool,
    /// A line that starts a trace of the user's format.
    pub user_start: Option<RegexSet>,
    /// A line that continues it.
    pub user_continuation: Option<RegexSet>,
    /// Fluent Bit multiline parsers a drop-in configuration names, tried
    /// in order before the other rules.
    pub state_rules: Vec<Arc<StateRules>>,
}

impl Rules {
    /// `names` from [`BUILT_IN`]; unknown names are the caller's to refuse.
    pub fn built_in(names: &[String]) -> Rules {
        let has = |n: &str| names.iter().any(|x| x == n);
        Rules {
            java: has("java"),
            python: has("python"),
            node: has("node"),
            go: has("go"),
            user_start: None,
            user_continuation: None,
            state_rules: Vec::new(),
        }
    }
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants, checked by the tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern}: {e}"))
}

static JAVA_EXCEPTION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"^(?:Exception in thread "[^"]*" )?(?:[a-zA-Z_$][\w$]*\.)+[\w$]*(?:Exception|Error|Throwable)(?::.*)?$"#,
    )
});
static JAVA_CONTINUATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:\s+at \S|\s*Caused by: |\s*Suppressed: |\s+\.\.\. \d+ (?:more|common frames omitted)$)",
    )
});
static PYTHON_FRAME: LazyLock<Regex> = LazyLock::new(|| re(r#"^(?:  File "|    |\s+\^+\s*$)"#));
static PYTHON_CHAIN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)$",
    )
});
static NODE_ERROR: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:[A-Z][A-Za-z]*)?Error(?: \[[\w-]+\])?: "));
static NODE_FRAME: LazyLock<Regex> = LazyLock::new(|| re(r"^\s+at \S"));
static GO_CONTINUATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:$|goroutine \d+ \[[^\]]*\]:$|\t|created by |\[signal |runtime stack:$|\s*panic: |[\w.$*/()\[\]{}-]+\(.*\)$|exit status \d+$)",
    )
});

// Most lines start no trace: the first byte (a digit of a timestamp, a
// `{`, a `[`) rules out most of them before a regex is run, and the
// fixed starts need no regex at all.

fn is_java_exception(text: &str) -> bool {
    // `Exception in thread …` or a class name: a letter, `_` or `$` first.
    text.as_bytes()
        .first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
        && JAVA_EXCEPTION.is_match(text)
}

/// The JVM's own report of an exception no code caught (`Exception in
/// thread "main" …`, printed by the default handler straight to stderr):
/// no log call wrote a message before it, so the line before it is not
/// its introducer.
fn is_uncaught(text: &str) -> bool {
    text.starts_with("Exception in thread \"")
}

fn is_node_error(text: &str) -> bool {
    // `Error: …` or `TypeError: …`: a capital letter first.
    text.as_bytes().first().is_some_and(u8::is_ascii_uppercase) && NODE_ERROR.is_match(text)
}

fn is_python_start(text: &str) -> bool {
    text == "Traceback (most recent call last):"
}

fn is_go_start(text: &str) -> bool {
    text.starts_with("panic: ") || text.starts_with("fatal error: ")
}

/// Which language a trace is in, and where in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trace {
    Java,
    /// In frames, until the exception line.
    PythonFrames,
    /// After the exception line: a chain may follow.
    PythonEnd,
    /// A blank line after the exception line, or after a chain line.
    PythonBlank {
        chained: bool,
    },
    /// The chain line: a blank line and a new traceback follow.
    PythonChain,
    Node,
    Go,
    User,
    /// Rule `rule` of `rules.state_rules[set]` matched the last line.
    States {
        set: u16,
        rule: u16,
    },
}

/// What a stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// One ordinary line, in case a Java exception line follows it.
    Introducer,
    /// An exception line (after its introducer, if any): a trace only if a
    /// frame follows.
    MaybeJava,
    MaybeNode,
    Open(Trace),
}

/// One held line. Its text is read from its record when a trace is
/// joined, not copied when the line is held: most lines held are possible
/// introducers of a Java exception, and go out unchanged with the next line.
#[derive(Debug)]
struct Held {
    event: Event,
    /// The sequence number of the delivery whose ack waits for this line.
    ack: Option<u64>,
    /// Whether the record has a text of its own (see
    /// [`Joiner::detach_held`]).
    detached: bool,
}

impl Held {
    fn new(event: Event, ack: Option<u64>) -> Held {
        Held {
            event,
            ack,
            detached: false,
        }
    }

    fn text(&self) -> &str {
        record_line(&self.event.record).map_or("", |(_, text)| text)
    }
}

/// A container's stream: its events' tag and `source`.
// `Hash` hashes the two as `str`s, as `StreamRef`'s does.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct StreamId {
    tag: Arc<str>,
    source: Box<str>,
}

/// A [`StreamId`] borrowed from an event: each line finds its stream with
/// it, and an owned id is built only for a stream's first line.
#[derive(Hash)]
struct StreamRef<'a> {
    tag: &'a str,
    source: &'a str,
}

impl Equivalent<StreamId> for StreamRef<'_> {
    fn equivalent(&self, id: &StreamId) -> bool {
        *id.tag == *self.tag && *id.source == *self.source
    }
}

#[derive(Debug)]
struct Stream {
    state: State,
    lines: Vec<Held>,
    bytes: usize,
    last_ns: i64,
    /// The budget's share for the bytes held.
    reserved: Option<Reservation>,
}

/// Joins the lines of stack traces; see the module's doc.
pub struct Joiner {
    rules: Rules,
    streams: HashMap<StreamId, Stream, RandomState>,
    wait_ns: i64,
    max_bytes: usize,
    budget: Option<Arc<MemoryBudget>>,
}

impl Joiner {
    pub fn new(
        rules: Rules,
        wait_ns: i64,
        max_bytes: usize,
        budget: Option<Arc<MemoryBudget>>,
    ) -> Joiner {
        Joiner {
            rules,
            streams: HashMap::with_hasher(RandomState::default()),
            wait_ns,
            max_bytes: max_bytes.max(1),
            budget,
        }
    }

    /// The oldest delivery (by sequence number) that asked for an ack and
    /// has a line held here.
    pub fn oldest_held_ack(&self) -> Option<u64> {
        self.streams
            .values()
            .flat_map(|s| s.lines.iter().filter_map(|l| l.ack))
            .min()
    }

    /// Whether any line is held, waiting for its trace to go on.
    pub fn holds_lines(&self) -> bool {
        self.streams.values().any(|s| !s.lines.is_empty())
    }

    /// Bytes of the lines held.
    pub fn held_bytes(&self) -> usize {
        self.streams.values().map(|s| s.bytes).sum()
    }

    /// Takes one application line's event; appends the events ready now to
    /// `out`, in order: lines released, traces closed, the line itself.
    /// `out` is the caller's, kept from line to line: most application
    /// lines release the line held before them.
    /// `ack`: the sequence number of its delivery when that asked for an
    /// ack; call [`Joiner::release_introducers`] after the delivery's last
    /// line.
    pub fn push_into(&mut self, event: Event, ack: Option<u64>, now_ns: i64, out: &mut Vec<Event>) {
        let Some((_, text)) = record_line(&event.record) else {
            out.push(event);
            return;
        };
        let id = StreamRef {
            tag: &event.tag,
            source: event.record.get_str("source").unwrap_or(""),
        };
        let len = text.len();
        let Joiner {
            rules,
            streams,
            max_bytes,
            budget,
            ..
        } = self;
        // What the line does is decided while its text is borrowed from the
        // event; the event moves into a stream or out after.
        let Some(stream) = streams.get_mut(&id) else {
            let Some(state) = start_state(rules, text).filter(|&s| !ends(rules, s)) else {
                out.push(event);
                return;
            };
            let mut stream = Stream {
                state,
                lines: Vec::new(),
                bytes: 0,
                last_ns: now_ns,
                reserved: None,
            };
            if !reserve(budget, &mut stream, len) {
                out.push(event);
                return;
            }
            stream.bytes = len;
            let id = StreamId {
                tag: Arc::clone(&event.tag),
                source: id.source.into(),
            };
            stream.lines.push(Held::new(event, ack));
            streams.insert(id, stream);
            return;
        };
        let Some(next) = next_state(rules, stream.state, text) else {
            // Not this stream's next line: what it held goes out as it is
            // (a trace joined, anything else line by line), and the line
            // starts afresh in the same place.
            emit_held(stream, rules, out);
            let started = start_state(rules, text)
                .filter(|&s| !ends(rules, s))
                .is_some_and(|state| {
                    stream.state = state;
                    stream.last_ns = now_ns;
                    // The share kept covers the line: most lines need the one
                    // unit the last line had, not given back and taken again.
                    if let Some(share) = &mut stream.reserved {
                        share.shrink_to(len);
                    }
                    let held = reserve(budget, stream, len);
                    stream.bytes = if held { len } else { 0 };
                    held
                });
            if started {
                stream.lines.push(Held::new(event, ack));
            } else {
                streams.remove(&id);
                out.push(event);
            }
            return;
        };
        // The joined text: the lines and a `\n` before each but the first.
        let added = len + 1;
        if stream.bytes + added > *max_bytes && matches!(stream.state, State::Open(_)) {
            // The trace is long: what is joined goes out, the rest starts a
            // new event of the same trace.
            close_joined(
                std::mem::take(&mut stream.lines),
                separator(rules, stream.state),
                out,
            );
            stream.bytes = 0;
            stream.reserved = None;
        }
        let added = if stream.lines.is_empty() {
            added - 1
        } else {
            added
        };
        if !reserve(budget, stream, added) {
            if let Some(stream) = streams.remove(&id) {
                close(stream, rules, out);
            }
            out.push(event);
            return;
        }
        if ends(rules, next) {
            // The line ends the message (a Fluent Bit rule back to a start
            // state): joined and written now.
            if let Some(mut stream) = streams.remove(&id) {
                stream.state = next;
                stream.lines.push(Held::new(event, ack));
                close(stream, rules, out);
            }
            return;
        }
        stream.state = next;
        stream.bytes += added;
        stream.last_ns = now_ns;
        stream.lines.push(Held::new(event, ack));
    }

    /// At the end of every delivery: the lines still held get a text of
    /// their own, so that they do not keep the rest of their frame's text
    /// alive (the budget counts only the lines).
    pub fn detach_held(&mut self) {
        for line in self.streams.values_mut().flat_map(|s| s.lines.iter_mut()) {
            if !line.detached {
                line.event.record = line.event.record.detached();
                line.detached = true;
            }
        }
    }

    /// At the end of a delivery that asked for an ack: the ordinary lines of
    /// it held as possible introducers go out, so that its ack never waits
    /// for a line that is not part of a trace. (Within the delivery, an
    /// introducer still joins the exception line that follows it.)
    pub fn release_introducers(&mut self, ack: u64) -> Vec<Event> {
        self.close_where(|s| {
            s.state == State::Introducer && s.lines.iter().any(|l| l.ack == Some(ack))
        })
    }

    /// Closes the streams that waited long enough for their next line:
    /// `wait`, or a Fluent Bit parser's own `flush_timeout`.
    pub fn expire(&mut self, now_ns: i64) -> Vec<Event> {
        let wait = self.wait_ns;
        let parser_waits: Vec<i64> = self.rules.state_rules.iter().map(|r| r.wait_ns()).collect();
        self.close_where(|s| {
            let wait = match s.state {
                State::Open(Trace::States { set, .. }) => parser_waits[usize::from(set)],
                _ => wait,
            };
            now_ns.saturating_sub(s.last_ns) >= wait
        })
    }

    /// Closes the streams `pick` chooses, in key order (so that output does
    /// not depend on the map's order).
    fn close_where(&mut self, pick: impl Fn(&Stream) -> bool) -> Vec<Event> {
        let mut keys: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| pick(s))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            if let Some(stream) = self.streams.remove(&key) {
                close(stream, &self.rules, &mut out);
            }
        }
        out
    }

    /// Closes every stream (at shutdown).
    pub fn flush(&mut self) -> Vec<Event> {
        self.expire(i64::MAX)
    }
}

/// The stream's next state if `text` continues what it holds.
fn next_state(rules: &Rules, state: State, text: &str) -> Option<State> {
    match state {
        State::Introducer if rules.java && is_java_exception(text) && !is_uncaught(text) => {
            Some(State::MaybeJava)
        }
        State::MaybeJava if JAVA_CONTINUATION.is_match(text) => Some(State::Open(Trace::Java)),
        State::MaybeNode if NODE_FRAME.is_match(text) => Some(State::Open(Trace::Node)),
        State::Open(trace) => continues(rules, trace, text).map(State::Open),
        _ => None,
    }
}

/// The trace's next state if `text` continues it.
fn continues(rules: &Rules, trace: Trace, text: &str) -> Option<Trace> {
    match trace {
        Trace::Java => JAVA_CONTINUATION.is_match(text).then_some(Trace::Java),
        Trace::Node => NODE_FRAME.is_match(text).then_some(Trace::Node),
        Trace::Go => GO_CONTINUATION.is_match(text).then_some(Trace::Go),
        Trace::User => rules
            .user_continuation
            .as_ref()
            .is_some_and(|r| r.is_match(text))
            .then_some(Trace::User),
        Trace::States { set, rule } => rules.state_rules[usize::from(set)]
            .next(rule, text)
            .map(|rule| Trace::States { set, rule }),
        Trace::PythonFrames => Some(if PYTHON_FRAME.is_match(text) {
            Trace::PythonFrames
        } else if text.trim().is_empty() {
            // No blank line inside frames: not a traceback after all.
            return None;
        } else {
            // The exception line ends the frames.
            Trace::PythonEnd
        }),
        Trace::PythonEnd if text.trim().is_empty() => Some(Trace::PythonBlank { chained: false }),
        Trace::PythonBlank { chained: false } if PYTHON_CHAIN.is_match(text) => {
            Some(Trace::PythonChain)
        }
        Trace::PythonChain if text.trim().is_empty() => Some(Trace::PythonBlank { chained: true }),
        Trace::PythonBlank { chained: true } if is_python_start(text) => Some(Trace::PythonFrames),
        _ => None,
    }
}

/// What a line on a stream with nothing open starts: a trace, or a line
/// held as an introducer; `None` for a line that goes out at once.
fn start_state(rules: &Rules, text: &str) -> Option<State> {
    let r = rules;
    // A Fluent Bit parser the configuration names first: its start rule
    // wins over a built-in one that matches the same line.
    if let Some(trace) = r.state_rules.iter().enumerate().find_map(|(set, rules)| {
        let rule = rules.start(text)?;
        Some(Trace::States {
            set: set as u16,
            rule,
        })
    }) {
        Some(State::Open(trace))
    } else if r.go && is_go_start(text) {
        Some(State::Open(Trace::Go))
    } else if r.python && is_python_start(text) {
        Some(State::Open(Trace::PythonFrames))
    } else if r.user_start.as_ref().is_some_and(|s| s.is_match(text)) {
        Some(State::Open(Trace::User))
    } else if r.java && is_java_exception(text) {
        Some(State::MaybeJava)
    } else if r.node && is_node_error(text) {
        Some(State::MaybeNode)
    } else if r.java && !text.trim().is_empty() {
        Some(State::Introducer)
    } else {
        None
    }
}

/// Whether a message ends with the line that put the stream in `state`.
fn ends(rules: &Rules, state: State) -> bool {
    match state {
        State::Open(Trace::States { set, rule }) => rules.state_rules[usize::from(set)].ends(rule),
        _ => false,
    }
}

/// Grows the stream's share of the budget to cover `bytes` more than it
/// holds; false when the budget has no room (the line is then not held).
fn reserve(budget: &Option<Arc<MemoryBudget>>, stream: &mut Stream, bytes: usize) -> bool {
    let Some(budget) = budget else {
        return true;
    };
    let have = stream.reserved.as_ref().map_or(0, Reservation::bytes);
    let needed = stream.bytes + bytes;
    if needed <= have {
        return true;
    }
    match budget.try_reserve(needed - have) {
        Some(more) => {
            match &mut stream.reserved {
                Some(r) => r.merge(more),
                None => stream.reserved = Some(more),
            }
            true
        }
        None => false,
    }
}

/// Emits what a stream holds (a trace as one event, anything else line by
/// line) and leaves it empty, its share of the budget kept.
fn emit_held(stream: &mut Stream, rules: &Rules, out: &mut Vec<Event>) {
    match stream.state {
        State::Open(_) => close_joined(
            std::mem::take(&mut stream.lines),
            separator(rules, stream.state),
            out,
        ),
        _ => out.extend(stream.lines.drain(..).map(|l| l.event)),
    }
    stream.bytes = 0;
}

/// What a closing stream emits: a trace as one event, anything else line
/// by line.
fn close(mut stream: Stream, rules: &Rules, out: &mut Vec<Event>) {
    emit_held(&mut stream, rules, out);
}

/// What joins a trace's lines: `\n`, or what its Fluent Bit parser joins
/// them with.
fn separator(rules: &Rules, state: State) -> &'static str {
    match state {
        State::Open(Trace::States { set, .. }) => rules.state_rules[usize::from(set)].separator(),
        _ => "\n",
    }
}

/// One event of the lines, joined with `separator`, trailing blank lines
/// left out; the first line's event gives its metadata and time.
fn close_joined(mut lines: Vec<Held>, separator: &str, out: &mut Vec<Event>) {
    while lines.len() > 1 && lines.last().is_some_and(|l| l.text().trim().is_empty()) {
        lines.pop();
    }
    let mut parts = lines.into_iter();
    let Some(first) = parts.next() else { return };
    let mut joined = first.text().to_string();
    for l in parts {
        joined.push_str(separator);
        joined.push_str(l.text());
    }
    let mut event = first.event;
    let key = record_line(&event.record).map_or("log", |(k, _)| k);
    event.record.insert(key, joined);
    out.push(event);
}

#[cfg(test)]
mod tests;
