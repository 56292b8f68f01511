//! `[STREAM_TASK]`s of Fluent Bit's stream processor (a `[SERVICE]
//! Streams_File`, as AWS's example for splitting log streams by level
//! uses), for the queries that make a new stream of records:
//!
//! ```text
//! CREATE STREAM name [WITH (tag='new.tag')] AS
//!     SELECT * | key [AS alias], ... FROM TAG:'pattern' [WHERE condition];
//! ```
//!
//! As in Fluent Bit (`src/stream_processor`, v5.1.1), the query sees each
//! record after the filters of its tag, and a record it selects goes on as
//! a copy tagged `tag` (the stream's name without one) through the filters
//! of that tag, then to the outputs that match it; the record itself goes
//! on too. A condition compares keys with `=`, `!=` (`<>`), `<`, `<=`,
//! `>`, `>=`, `IS [NOT] NULL` and `@record.contains(key)`, joined by
//! `AND`, `OR`, `NOT` and parentheses, as `reduce_expression` and
//! `numerical_comp` evaluate them: a string compares with a string, or
//! with a number once read as one; a number with a number, a boolean with
//! a boolean (`=` only); a key that is missing makes its comparison false,
//! `IS NULL` included, and `!=` is `NOT (=)`, so true.
//!
//! Aggregations, windows, `GROUP BY`, functions and `FROM STREAM:` are
//! refused at start, naming the task: Sluice does not run them.

use serde_json::Value as Json;
use sluice_firelens::{FieldValue, Record};

use super::classic::Section;
use super::parsers::{c_float, c_integer, c_sign};
use super::plan::TagMatch;

/// One `CREATE STREAM` query.
#[derive(Debug)]
pub struct StreamTask {
    pub name: String,
    /// The copies' tag.
    pub tag: String,
    /// `FROM TAG:'pattern'`.
    pub from: TagMatch,
    /// `None`: `SELECT *`.
    pub keys: Option<Vec<(String, String)>>,
    pub condition: Option<Condition>,
}

#[derive(Debug, PartialEq)]
pub enum Condition {
    Compare(String, Op, Value),
    IsNull(String),
    Contains(String),
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

/// `!=` is `NOT (=)`, as Fluent Bit's grammar makes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl StreamTask {
    /// A `[STREAM_TASK]` section: `Name` and `Exec`.
    pub fn from_section(section: &Section) -> Result<StreamTask, String> {
        let name = section.get("name").unwrap_or("");
        let exec = section
            .get("exec")
            .ok_or_else(|| format!("[STREAM_TASK] {name} has no Exec"))?;
        parse(exec).map_err(|e| format!("[STREAM_TASK] {name}: {e}"))
    }

    /// The copy this task makes of a record of `tag`, if it selects it.
    pub fn select(&self, tag: &str, record: &Record) -> Option<Record> {
        if !self.from.matches(tag) {
            return None;
        }
        if let Some(condition) = &self.condition {
            if !condition.holds(record) {
                return None;
            }
        }
        let Some(keys) = &self.keys else {
            return Some(record.clone());
        };
        let mut copy = Record::default();
        for (key, alias) in keys {
            if let Some(value) = record.get(key) {
                match value {
                    FieldValue::Str(s) => copy.insert(alias, s),
                    FieldValue::Json(json) => copy.insert_json(alias, json.clone()),
                }
            }
        }
        Some(copy)
    }
}

impl Condition {
    /// As `reduce_expression` finds it: a key that is missing makes its
    /// comparison false (`IS NULL` too), and `NOT` turns that around.
    pub fn holds(&self, record: &Record) -> bool {
        match self {
            Condition::Compare(key, op, value) => match record.get(key) {
                Some(found) => compare(found, *op, value),
                None => false,
            },
            Condition::IsNull(key) => matches!(record.get(key), Some(FieldValue::Json(Json::Null))),
            Condition::Contains(key) => record.contains_key(key),
            Condition::Not(c) => !c.holds(record),
            Condition::And(a, b) => a.holds(record) && b.holds(record),
            Condition::Or(a, b) => a.holds(record) || b.holds(record),
        }
    }
}

/// `numerical_comp`: values of one type compare; a string compared with a
/// number is read as one first, as `string_to_number` reads it.
fn compare(found: FieldValue<'_>, op: Op, value: &Value) -> bool {
    let text = match found {
        FieldValue::Str(s) => Some(s),
        FieldValue::Json(Json::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let ordering = match (text, found, value) {
        (Some(s), _, Value::Str(v)) => s.cmp(v.as_str()),
        (Some(s), _, Value::Num(v)) => match string_number(s).and_then(|n| n.partial_cmp(v)) {
            Some(o) => o,
            None => return false,
        },
        (None, FieldValue::Json(Json::Number(n)), Value::Num(v)) => {
            match n.as_f64().and_then(|n| n.partial_cmp(v)) {
                Some(o) => o,
                None => return false,
            }
        }
        (None, FieldValue::Json(Json::Bool(b)), Value::Bool(v)) => {
            return op == Op::Eq && b == v;
        }
        _ => return false,
    };
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ordering == Equal,
        Op::Lt => ordering == Less,
        Op::Le => ordering != Greater,
        Op::Gt => ordering == Greater,
        Op::Ge => ordering != Less,
    }
}

/// `string_to_number`: with one `.`, the float C's `strtold` reads from
/// the start; with none, the integer `strtoll` reads; else none.
fn string_number(text: &str) -> Option<f64> {
    let dots = text.matches('.').count();
    let (_, rest) = c_sign(text);
    let digits = rest.trim_start_matches('.');
    let reads = digits.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && rest.len() - digits.len() <= dots;
    match dots {
        _ if !reads => None,
        0 => Some(c_integer(text) as f64),
        1 => Some(c_float(text)),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            // A quote inside is written twice, as in SQL.
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a string is not closed".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Token::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text
                .parse()
                .map_err(|_| format!("{text:?} is not a number"))?;
            out.push(Token::Num(n));
        } else if c.is_alphanumeric() || c == '_' || c == '@' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '@' | '.' | '-'))
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "!=" => "!=",
                "<>" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                _ => match c {
                    '(' => "(",
                    ')' => ")",
                    ',' => ",",
                    ';' => ";",
                    '*' => "*",
                    '=' => "=",
                    '<' => "<",
                    '>' => ">",
                    ':' => ":",
                    other => return Err(format!("{other:?} is not part of a query Sluice reads")),
                },
            };
            i += sym.len();
            out.push(Token::Sym(sym));
        }
    }
    Ok(out)
}

/// A query's tokens, read front to back.
struct Reader {
    tokens: Vec<Token>,
    at: usize,
}

impl Reader {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn word(&mut self, word: &str) -> Result<(), String> {
        if self.is_word(word) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {word}, found {}", self.found()))
        }
    }

    fn sym(&mut self, sym: &str) -> Result<(), String> {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == sym) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {sym:?}, found {}", self.found()))
        }
    }

    fn name(&mut self) -> Result<String, String> {
        self.take("a name", |t| match t {
            Token::Word(w) => Some(w),
            _ => None,
        })
    }

    fn string(&mut self) -> Result<String, String> {
        self.take("a 'string'", |t| match t {
            Token::Str(s) => Some(s),
            _ => None,
        })
    }

    /// The next token's text when `pick` takes it, else an error naming
    /// `what` was expected (and the token stays).
    fn take(
        &mut self,
        what: &str,
        pick: impl Fn(&Token) -> Option<&String>,
    ) -> Result<String, String> {
        match self.peek().and_then(pick).cloned() {
            Some(text) => {
                self.at += 1;
                Ok(text)
            }
            None => Err(format!("expected {what}, found {}", self.found())),
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(Token::Word(w)) => w.clone(),
            Some(Token::Str(s)) => format!("'{s}'"),
            Some(Token::Num(n)) => n.to_string(),
            Some(Token::Sym(s)) => (*s).to_string(),
        }
    }
}

const REFUSED: [&str; 4] = ["WINDOW", "GROUP", "LIMIT", "ORDER"];

fn parse(exec: &str) -> Result<StreamTask, String> {
    let mut r = Reader {
        tokens: tokens(exec)?,
        at: 0,
    };
    if r.is_word("SELECT") {
        return Err("a query without CREATE STREAM writes its results to Fluent Bit's standard output; Sluice runs CREATE STREAM ... AS SELECT".into());
    }
    r.word("CREATE")?;
    r.word("STREAM")?;
    let name = r.name()?;
    let mut tag = name.clone();
    if r.is_word("WITH") {
        r.at += 1;
        r.sym("(")?;
        loop {
            let key = r.name()?;
            r.sym("=")?;
            let value = r.string()?;
            if key.eq_ignore_ascii_case("tag") {
                tag = value;
            }
            if r.sym(",").is_err() {
                break;
            }
        }
        r.sym(")")?;
    }
    r.word("AS")?;
    r.word("SELECT")?;
    let keys = if r.sym("*").is_ok() {
        None
    } else {
        let mut keys = Vec::new();
        loop {
            let key = r.name()?;
            if r.peek() == Some(&Token::Sym("(")) {
                return Err(format!(
                    "{key}(...): Sluice runs queries that select records and keys, not functions or aggregations"
                ));
            }
            let alias = if r.is_word("AS") {
                r.at += 1;
                r.name()?
            } else {
                key.clone()
            };
            keys.push((key, alias));
            if r.sym(",").is_err() {
                break;
            }
        }
        Some(keys)
    };
    r.word("FROM")?;
    if r.is_word("STREAM") {
        return Err("FROM STREAM: Sluice runs queries on records FROM TAG:'pattern'".into());
    }
    r.word("TAG")?;
    r.sym(":")?;
    let from = TagMatch::Glob(r.string()?);
    let condition = if r.is_word("WHERE") {
        r.at += 1;
        Some(or(&mut r)?)
    } else {
        None
    };
    if let Some(word) = REFUSED.iter().find(|w| r.is_word(w)) {
        return Err(format!(
            "{word}: Sluice runs queries that select records and keys, not windows or aggregations"
        ));
    }
    let _ = r.sym(";");
    if r.peek().is_some() {
        return Err(format!("unexpected {} after the query", r.found()));
    }
    Ok(StreamTask {
        name,
        tag,
        from,
        keys,
        condition,
    })
}

fn or(r: &mut Reader) -> Result<Condition, String> {
    let mut left = and(r)?;
    while r.is_word("OR") {
        r.at += 1;
        left = Condition::Or(Box::new(left), Box::new(and(r)?));
    }
    Ok(left)
}

fn and(r: &mut Reader) -> Result<Condition, String> {
    let mut left = not(r)?;
    while r.is_word("AND") {
        r.at += 1;
        left = Condition::And(Box::new(left), Box::new(not(r)?));
    }
    Ok(left)
}

fn not(r: &mut Reader) -> Result<Condition, String> {
    if r.is_word("NOT") {
        r.at += 1;
        return Ok(Condition::Not(Box::new(not(r)?)));
    }
    if r.sym("(").is_ok() {
        let inner = or(r)?;
        r.sym(")")?;
        return Ok(inner);
    }
    let key = r.name()?;
    if key.eq_ignore_ascii_case("@record.contains") {
        r.sym("(")?;
        let key = r.name()?;
        r.sym(")")?;
        return Ok(Condition::Contains(key));
    }
    if r.is_word("IS") {
        r.at += 1;
        let negated = r.is_word("NOT");
        if negated {
            r.at += 1;
        }
        r.word("NULL")?;
        let is_null = Condition::IsNull(key);
        return Ok(if negated {
            Condition::Not(Box::new(is_null))
        } else {
            is_null
        });
    }
    let (op, negated) = match r.next() {
        Some(Token::Sym("=")) => (Op::Eq, false),
        Some(Token::Sym("!=")) => (Op::Eq, true),
        Some(Token::Sym("<")) => (Op::Lt, false),
        Some(Token::Sym("<=")) => (Op::Le, false),
        Some(Token::Sym(">")) => (Op::Gt, false),
        Some(Token::Sym(">=")) => (Op::Ge, false),
        _ => {
            r.at -= 1;
            return Err(format!(
                "expected a comparison after {key}, found {}",
                r.found()
            ));
        }
    };
    let value = match r.next() {
        Some(Token::Str(s)) => Value::Str(s),
        Some(Token::Num(n)) => Value::Num(n),
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
        _ => {
            r.at -= 1;
            return Err(format!("expected a value after {key}, found {}", r.found()));
        }
    };
    let compare = Condition::Compare(key, op, value);
    Ok(if negated {
        Condition::Not(Box::new(compare))
    } else {
        compare
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;

    use crate::fluentbit::tests::record;

    fn task(exec: &str) -> Result<StreamTask, String> {
        StreamTask::from_section(&Section {
            kind: SectionKind::StreamTask,
            at: "s.conf:1".into(),
            entries: vec![("Name".into(), "t".into()), ("Exec".into(), exec.into())],
        })
    }

    /// AWS's example for splitting log streams by level.
    #[test]
    fn aws_s_example_splits_by_level() {
        let t = task("CREATE STREAM debug WITH (tag='logs.debug') AS SELECT * from TAG:'app*' WHERE level = 'debug';").unwrap();
        assert_eq!((t.name.as_str(), t.tag.as_str()), ("debug", "logs.debug"));
        let debug = record(r#"{"level":"debug","msg":"x"}"#);
        let copy = t.select("app-firelens-1", &debug).unwrap();
        assert_eq!(copy.to_json(), debug.to_json());
        assert!(t
            .select("app-firelens-1", &record(r#"{"level":"info"}"#))
            .is_none());
        assert!(t.select("envoy-firelens-1", &debug).is_none());
        assert!(t
            .select("app-firelens-1", &record(r#"{"msg":"x"}"#))
            .is_none());
    }

    #[test]
    fn conditions_as_fluent_bit_evaluates_them() {
        let r = record(
            r#"{"level":"error","code":503,"ok":false,"none":null,"log":"x","text_code":"503","prefix":"12ab","float_text":"2.5"}"#,
        );
        for (condition, holds) in [
            ("code >= 500 AND code < 600", true),
            ("code > 503 OR level = 'error'", true),
            ("NOT (level = 'error')", false),
            ("level <> 'info'", true),
            ("code = '503'", false),
            ("level = 5", false),
            ("ok = false", true),
            ("ok != true", true),
            ("none IS NULL AND log IS NOT NULL", true),
            ("missing IS NULL", false),
            ("missing IS NOT NULL", true),
            (
                "text_code = 503 AND text_code > 99.5 AND prefix = 12 AND float_text = 2.5",
                true,
            ),
            ("level > 5", false),
            (
                "@record.contains(log) AND NOT @record.contains(missing)",
                true,
            ),
            ("missing != 'x'", true),
            ("missing = 'x'", false),
            ("code <= 503.0 AND code >= -1", true),
        ] {
            let t = task(&format!(
                "CREATE STREAM s AS SELECT * FROM TAG:'*' WHERE {condition}"
            ))
            .unwrap();
            assert_eq!(t.select("x", &r).is_some(), holds, "{condition}");
        }
    }

    #[test]
    fn selected_keys_and_the_default_tag() {
        let t = task("create stream errors as select level, msg AS message from tag:'app*' where level = 'error'").unwrap();
        assert_eq!(t.tag, "errors");
        let copy = t
            .select("app", &record(r#"{"level":"error","msg":"boom","n":1}"#))
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(copy.to_json()),
            serde_json::json!({"level": "error", "message": "boom"})
        );
    }

    #[test]
    fn what_sluice_does_not_run_is_refused() {
        for (exec, error) in [
            ("SELECT * FROM TAG:'app*';", "[STREAM_TASK] t: a query without CREATE STREAM writes its results to Fluent Bit's standard output; Sluice runs CREATE STREAM ... AS SELECT"),
            ("CREATE STREAM s AS SELECT AVG(size) FROM TAG:'app*' WINDOW TUMBLING (5 SECOND);", "[STREAM_TASK] t: AVG(...): Sluice runs queries that select records and keys, not functions or aggregations"),
            ("CREATE STREAM s AS SELECT * FROM STREAM:apache;", "[STREAM_TASK] t: FROM STREAM: Sluice runs queries on records FROM TAG:'pattern'"),
            ("CREATE STREAM s AS SELECT * FROM TAG:'a' GROUP BY x;", "[STREAM_TASK] t: GROUP: Sluice runs queries that select records and keys, not windows or aggregations"),
            ("CREATE STREAM s AS SELECT * FROM TAG:'a' WHERE level ~ 'x'", "[STREAM_TASK] t: '~' is not part of a query Sluice reads"),
            ("CREATE STREAM s AS SELECT * FROM TAG:'a' WHERE level = 'x", "[STREAM_TASK] t: a string is not closed"),
            ("CREATE STREAM s AS SELECT * FROM TAG:'a' WHERE level", "[STREAM_TASK] t: expected a comparison after level, found the end"),
            ("CREATE STREAM s AS SELECT * FROM TAG:'a' x", "[STREAM_TASK] t: unexpected x after the query"),
            ("CREATE STREAM s AS SELECT * FROM TAG:'a' WHERE x = NULL", "[STREAM_TASK] t: expected a value after x, found NULL"),
        ] {
            assert_eq!(task(exec).unwrap_err(), error, "{exec}");
        }
        assert_eq!(
            StreamTask::from_section(&Section {
                kind: SectionKind::StreamTask,
                at: "s.conf:1".into(),
                entries: vec![("Name".into(), "t".into())],
            })
            .unwrap_err(),
            "[STREAM_TASK] t has no Exec"
        );
    }

    proptest::proptest! {
        /// Any Exec text is read or refused with a message, never a panic,
        /// and a query that reads evaluates on any record.
        #[test]
        fn any_query_reads_or_is_refused(exec in "(CREATE STREAM s (WITH \\(tag='t'\\) )?AS SELECT (\\*|a, b AS c) FROM TAG:'a\\*' WHERE )?[ a-z0-9'()=!<>.@,*;:-]{0,40}") {
            if let Ok(t) = task(&exec) {
                let _ = t.select("app", &record(r#"{"a":"x","b":5,"c":null,"d":true}"#));
            }
        }
    }
}
