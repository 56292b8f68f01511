//! A Fluent Bit `[MULTILINE_PARSER]` of `type regex`: rules that move a
//! message from state to state, run as Fluent Bit runs them
//! (`src/multiline/flb_ml_rule.c`, v5.1.1):
//!
//! - a rule is `from-states regex to-state`; a rule whose from-states hold
//!   `start_state` is a start rule, and the first rule must be one;
//! - a line that matches a start rule (the first, in order) starts a
//!   message, after the message open before it is written;
//! - while a message is open, the next line may match only the rules that
//!   leave from the last matched rule's to-state, start rules left out: the
//!   first that matches adds the line to the message;
//! - a line that continues nothing and starts nothing ends the message,
//!   and goes out on its own;
//! - when the last matched rule's to-state is also a start rule's state,
//!   the message ends with that line.
//!
//! A parser of `type endswith` or `type equal` has no rules: a line that
//! ends with (or is) its `match_string` ends the message, and with
//! `negate` a line that does not; every other line opens or continues one
//! (`flb_ml.c`'s `package_content`). Its lines are joined without a
//! separator, as Fluent Bit joins them when the filter names a
//! `multiline.key_content`. Fluent Bit passes a line shorter than the
//! match string on alone, out of order; here it is a line that does not
//! end with it.
//!
//! Pure: the joiner ([`super::Joiner`]) holds the lines and the clock.

use regex::Regex;

/// The name of the state every message starts in.
pub const START_STATE: &str = "start_state";

/// One rule as written.
#[derive(Clone, Debug)]
pub struct RuleSpec {
    /// The states it leaves from (Fluent Bit splits them on `,`).
    pub from: Vec<String>,
    pub regex: Regex,
    /// The state it moves to; none: no line continues after it.
    pub to: Option<String>,
}

#[derive(Clone, Debug)]
struct Rule {
    regex: Regex,
    start: bool,
    /// The rules the next line may match, in order: those leaving from
    /// this rule's to-state, start rules left out.
    next: Vec<u16>,
    /// A start rule leaves from this rule's to-state: the message ends
    /// with the line this rule matched.
    ends: bool,
}

/// `type endswith` or `type equal`: which lines end a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminator {
    /// `match_string`.
    pub text: String,
    /// `type equal`: the whole line, not its end.
    pub equal: bool,
    /// `negate`: a line that does not match ends the message.
    pub negate: bool,
}

impl Terminator {
    fn ends(&self, line: &str) -> bool {
        let matched = if self.equal {
            line == self.text
        } else {
            line.ends_with(&self.text)
        };
        matched != self.negate
    }
}

/// A terminator parser's two states: a message open, or just ended.
const OPEN: u16 = 0;
const ENDED: u16 = 1;

/// A parser's rules, checked and linked.
#[derive(Clone, Debug)]
pub struct StateRules {
    name: String,
    rules: Vec<Rule>,
    /// A parser of type `endswith` or `equal`, in place of rules.
    terminator: Option<Terminator>,
    /// How long a message waits for its next line (`flush_timeout`).
    wait_ns: i64,
}

impl StateRules {
    /// Checks the rules as Fluent Bit does when it loads the parser: the
    /// first is a start rule, and every to-state is some rule's from-state.
    pub fn new(name: &str, specs: Vec<RuleSpec>, wait_ns: i64) -> Result<StateRules, String> {
        let Some(first) = specs.first() else {
            return Err("has no rule".into());
        };
        if !is_start(first) {
            return Err(format!(
                "the first rule must leave from \"{START_STATE}\"; it leaves from {:?}",
                first.from.join(",")
            ));
        }
        if specs.len() > usize::from(u16::MAX) {
            return Err(format!("has {} rules; at most {}", specs.len(), u16::MAX));
        }
        let leaving = |state| leaving(&specs, state);
        let mut rules = Vec::with_capacity(specs.len());
        for spec in &specs {
            let (next, ends) = match &spec.to {
                None => (Vec::new(), false),
                Some(to) => {
                    if leaving(to).next().is_none() {
                        return Err(format!(
                            "the rule from {:?} goes to state {to:?}, which no rule leaves from",
                            spec.from.join(",")
                        ));
                    }
                    let next = leaving(to)
                        .filter(|(_, s)| !is_start(s))
                        .map(|(i, _)| i as u16)
                        .collect();
                    (next, leaving(to).any(|(_, s)| is_start(s)))
                }
            };
            rules.push(Rule {
                regex: spec.regex.clone(),
                start: is_start(spec),
                next,
                ends,
            });
        }
        Ok(StateRules {
            name: name.to_string(),
            rules,
            terminator: None,
            wait_ns,
        })
    }

    /// A parser of type `endswith` or `equal`.
    pub fn terminated(name: &str, terminator: Terminator, wait_ns: i64) -> StateRules {
        StateRules {
            name: name.to_string(),
            rules: Vec::new(),
            terminator: Some(terminator),
            wait_ns,
        }
    }

    /// What the parser is, for `check-config`.
    pub fn describe(&self) -> String {
        match &self.terminator {
            None => format!("of {} rule(s)", self.rules.len()),
            Some(t) => format!(
                "of type {} {:?}{}",
                if t.equal { "equal" } else { "endswith" },
                t.text,
                if t.negate { ", negated" } else { "" }
            ),
        }
    }

    /// What joins the lines of a message.
    pub fn separator(&self) -> &'static str {
        if self.terminator.is_some() {
            ""
        } else {
            "\n"
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn wait_ns(&self) -> i64 {
        self.wait_ns
    }

    /// The start rule `text` matches, the first in order. Every line
    /// starts a terminator parser's message (one that ends it at once is a
    /// message of its own).
    pub fn start(&self, text: &str) -> Option<u16> {
        if let Some(t) = &self.terminator {
            return Some(if t.ends(text) { ENDED } else { OPEN });
        }
        self.rules
            .iter()
            .position(|r| r.start && r.regex.is_match(text))
            .map(|i| i as u16)
    }

    /// The rule `text` matches after `rule` matched the line before it.
    pub fn next(&self, rule: u16, text: &str) -> Option<u16> {
        if let Some(t) = &self.terminator {
            return (rule == OPEN).then_some(if t.ends(text) { ENDED } else { OPEN });
        }
        let rule = self.rules.get(usize::from(rule))?;
        rule.next
            .iter()
            .copied()
            .find(|&i| self.rules[usize::from(i)].regex.is_match(text))
    }

    /// Whether the message ends with the line `rule` matched.
    pub fn ends(&self, rule: u16) -> bool {
        if self.terminator.is_some() {
            return rule == ENDED;
        }
        self.rules.get(usize::from(rule)).is_some_and(|r| r.ends)
    }
}

fn is_start(spec: &RuleSpec) -> bool {
    spec.from.iter().any(|f| f == START_STATE)
}

/// The rules that leave from `state`, with their places.
fn leaving<'a>(
    specs: &'a [RuleSpec],
    state: &'a str,
) -> impl Iterator<Item = (usize, &'a RuleSpec)> + 'a {
    specs
        .iter()
        .enumerate()
        .filter(move |(_, s)| s.from.iter().any(|f| f == state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(from: &str, regex: &str, to: Option<&str>) -> RuleSpec {
        RuleSpec {
            from: from.split(',').map(str::to_string).collect(),
            regex: Regex::new(regex).unwrap(),
            to: to.map(str::to_string),
        }
    }

    /// AWS's FireLens example (`firelens-concatanate-multiline.html`).
    fn aws_example() -> StateRules {
        StateRules::new(
            "multiline-regex-test",
            vec![
                spec("start_state", r"(Dec \d+ \d+\:\d+\:\d+)(.*)", Some("cont")),
                spec("cont", r"^\s+at.*", Some("cont")),
            ],
            1_000_000_000,
        )
        .unwrap()
    }

    #[test]
    fn a_start_then_continuations() {
        let r = aws_example();
        assert_eq!(r.start("Dec 14 06:41:08 Exception in thread"), Some(0));
        assert_eq!(r.start("    at com.example.Main"), None);
        assert_eq!(r.next(0, "    at com.example.Main"), Some(1));
        assert_eq!(r.next(1, "    at com.example.Other"), Some(1));
        // A start line does not continue: it starts anew.
        assert_eq!(r.next(1, "Dec 14 06:41:09 next"), None);
        assert!(!r.ends(0) && !r.ends(1));
        assert_eq!(r.wait_ns(), 1_000_000_000);
        assert_eq!((r.name(), r.rule_count()), ("multiline-regex-test", 2));
    }

    #[test]
    fn states_link_rules_in_order() {
        let r = StateRules::new(
            "p",
            vec![
                spec("start_state", "^BEGIN", Some("body")),
                spec("body", "^  x", Some("body")),
                spec("body", "^  ", Some("tail")),
                spec("tail", "^END$", Some("start_state")),
            ],
            1,
        )
        .unwrap();
        // Both body rules may follow; the first that matches wins.
        assert_eq!(r.next(0, "  x1"), Some(1));
        assert_eq!(r.next(0, "  y"), Some(2));
        assert_eq!(r.next(2, "  x1"), None);
        assert_eq!(r.next(2, "END"), Some(3));
        // To start_state: the message ends with END.
        assert!(r.ends(3) && !r.ends(2));
        assert_eq!(r.next(3, "  x"), None);
    }

    #[test]
    fn a_rule_leaving_from_start_and_another_state_ends_a_message_there() {
        // Fluent Bit counts a rule with `start_state` among its from-states
        // as a start rule: going to `cont` therefore ends the message.
        let r = StateRules::new(
            "p",
            vec![
                spec("start_state,cont", "^a", Some("cont")),
                spec("cont", "^b", Some("cont")),
            ],
            1,
        )
        .unwrap();
        assert!(r.ends(0) && r.ends(1));
        assert_eq!(r.next(0, "b"), Some(1));
        assert_eq!(r.next(0, "a"), None);
    }

    #[test]
    fn no_to_state_continues_nothing() {
        let r = StateRules::new("p", vec![spec("start_state", "^a", None)], 1).unwrap();
        assert_eq!(r.start("ab"), Some(0));
        assert_eq!(r.next(0, "ab"), None);
        assert!(!r.ends(0));
    }

    #[test]
    fn a_terminator_ends_a_message_with_the_line_that_matches() {
        let ends_with = |negate| {
            StateRules::terminated(
                "p",
                Terminator {
                    text: "\\".into(),
                    equal: false,
                    negate,
                },
                1,
            )
        };
        // negate: a line that does not end with `\` ends the message.
        let r = ends_with(true);
        assert_eq!(r.start("first \\"), Some(OPEN));
        assert_eq!(r.next(OPEN, "second \\"), Some(OPEN));
        assert_eq!(r.next(OPEN, "last"), Some(ENDED));
        assert!(r.ends(ENDED) && !r.ends(OPEN));
        assert_eq!(r.next(ENDED, "after"), None);
        // A line that ends at once is a message of its own.
        assert_eq!(r.start("alone"), Some(ENDED));
        assert_eq!(r.start(""), Some(ENDED));
        let r = ends_with(false);
        assert_eq!(r.start("a"), Some(OPEN));
        assert_eq!(r.next(OPEN, "b \\"), Some(ENDED));
        assert_eq!(
            (r.separator(), ends_with(true).describe().as_str()),
            ("", "of type endswith \"\\\\\", negated")
        );
        let equal = StateRules::terminated(
            "p",
            Terminator {
                text: "END".into(),
                equal: true,
                negate: false,
            },
            1,
        );
        assert_eq!(equal.start("x END"), Some(OPEN));
        assert_eq!(equal.next(OPEN, "END"), Some(ENDED));
        assert_eq!(equal.describe(), "of type equal \"END\"");
        assert_eq!(aws_example().separator(), "\n");
    }

    #[test]
    fn malformed_rules_are_refused_as_fluent_bit_refuses_them() {
        let err = |specs| StateRules::new("p", specs, 1).unwrap_err();
        assert_eq!(err(vec![]), "has no rule");
        assert_eq!(
            err(vec![spec("cont", "^a", Some("cont"))]),
            "the first rule must leave from \"start_state\"; it leaves from \"cont\""
        );
        assert_eq!(
            err(vec![spec("start_state", "^a", Some("cont"))]),
            "the rule from \"start_state\" goes to state \"cont\", which no rule leaves from"
        );
    }
}
