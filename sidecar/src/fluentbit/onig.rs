//! Fluent Bit's regular expressions as Rust's `regex` reads them.
//!
//! Fluent Bit compiles every pattern of a configuration (`Regex` of a
//! parser, `grep`, `modify` conditions, multiline rules, `Match_Regex`)
//! with `flb_regex_create` (`src/flb_regex.c`): Onigmo, Ruby syntax.
//! - A pattern may be written `/pattern/` or `/pattern/options`, options
//!   `i` (case), `m` (Ruby's: `.` matches a newline), `x` (extended) and
//!   `o` (ignored). An option letter it does not know leaves the whole text,
//!   slashes included, as the pattern.
//! - In Ruby, `^` and `$` match at every line's start and end.
//!
//! - Ruby's escapes keep their meaning ([`ruby_escapes`]): `\d`, `\w`,
//!   `\s` and `\h` (a hex digit) are ASCII classes, where Rust's first
//!   three are Unicode's and it has no `\h`; `\<` and `\>` are the
//!   characters, where Rust reads word boundaries (Fluent Bit's own
//!   syslog parsers start with `^\<`). `\b` stays Unicode's, as in
//!   Onigmo.
//!
//! - A `{` that opens no interval quantifier is the character, and
//!   `{,m}` is `{0,m}` ([`ruby_escapes`]).
//!
//! Named groups read the same (`(?<name>…)`); what Rust's engine does not
//! have (look-around, backreferences) is an error at start, with the
//! engine's message.

use regex::{Regex, RegexBuilder};

/// Compiles `pattern` as Fluent Bit would mean it.
pub fn regex(pattern: &str) -> Result<Regex, regex::Error> {
    let (body, options) = split_options(pattern);
    let mut builder = RegexBuilder::new(&ruby_escapes(body));
    builder.multi_line(true);
    for option in options.chars() {
        match option {
            'i' => builder.case_insensitive(true),
            'm' => builder.dot_matches_new_line(true),
            'x' => builder.ignore_whitespace(true),
            _ => &mut builder,
        };
    }
    builder.build()
}

/// `pattern` with the escapes whose meaning Rust's engine reads otherwise
/// written as Onigmo's Ruby syntax means them (checked against Fluent Bit
/// v5.1.1's grep filter): the classes `\d`, `\w`, `\s`, `\h` and their
/// negations as ASCII sets, inside a bracket or not, and `\<`, `\>` as
/// the characters. Every other escape is left as it is. Outside brackets,
/// a `{` that opens no interval (and a `}` that closes none) is escaped,
/// and `{,m}` written `{0,m}`.
fn ruby_escapes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    // How deep in brackets (Onigmo's classes nest: `[a-z&&[^x]]`), and
    // whether the last character opened one (a `]` right after `[` or
    // `[^` is a character).
    let mut depth = 0usize;
    let mut just_opened = false;
    // `Chars`, for `as_str`: what is left of the pattern, to look ahead.
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let opened = just_opened;
        just_opened = false;
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push(c);
                    break;
                };
                // What it is inside a bracket, and outside one.
                let (inside, outside) = match e {
                    'd' => ("0-9", "[0-9]"),
                    'D' => ("[:^digit:]", "[^0-9]"),
                    'w' => ("0-9A-Za-z_", "[0-9A-Za-z_]"),
                    'W' => ("[:^word:]", "[^0-9A-Za-z_]"),
                    'h' => ("0-9a-fA-F", "[0-9a-fA-F]"),
                    'H' => ("[:^xdigit:]", "[^0-9a-fA-F]"),
                    // Ruby's `\s` is `[ \t\r\n\f\v]`, written with escapes
                    // only, so that the `x` option (which drops blanks)
                    // leaves them.
                    's' => (r"\t\n\x0B\x0C\r\x20", r"[\t\n\x0B\x0C\r\x20]"),
                    'S' => ("[:^space:]", r"[^\t\n\x0B\x0C\r\x20]"),
                    // Word boundaries to Rust: the characters, by code.
                    '<' => ("\\x3C", "\\x3C"),
                    '>' => ("\\x3E", "\\x3E"),
                    _ => {
                        out.push(c);
                        out.push(e);
                        // `\p{Alpha}`, `\x{263A}`: the braces are the escape's.
                        if matches!(e, 'p' | 'P' | 'x') && chars.as_str().starts_with('{') {
                            for b in chars.by_ref() {
                                out.push(b);
                                if b == '}' {
                                    break;
                                }
                            }
                        }
                        continue;
                    }
                };
                out.push_str(if depth > 0 { inside } else { outside });
            }
            '[' if depth > 0 && chars.as_str().starts_with(':') => {
                // A POSIX bracket (`[:alpha:]`), through its `:]`.
                out.push(c);
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            '[' => {
                depth += 1;
                out.push(c);
                if chars.as_str().starts_with('^') {
                    out.push('^');
                    chars.next();
                }
                just_opened = true;
            }
            ']' if depth > 0 && !opened => {
                depth -= 1;
                out.push(c);
            }
            // Onigmo reads a `{` that opens no interval (`{name=`) as the
            // character, where Rust's engine refuses it; and `{,m}` as
            // `{0,m}`, which Rust's does not read.
            '{' if depth == 0 => match interval(chars.as_str()) {
                Some((len, lower, upper)) => {
                    out.push('{');
                    out.push_str(if lower.is_empty() { "0" } else { lower });
                    out.push_str(upper);
                    out.push('}');
                    for _ in 0..len {
                        chars.next();
                    }
                }
                None => out.push_str("\\{"),
            },
            '}' if depth == 0 => out.push_str("\\}"),
            _ => out.push(c),
        }
    }
    out
}

/// The interval quantifier `text` (what follows a `{`) starts with, as
/// Onigmo's Ruby syntax reads one (`n}`, `n,}`, `,m}`, `n,m}`): the
/// characters it takes through its `}`, its lower bound as written
/// (empty for `{,m}`), and the rest before the `}` (`,m`, `,` or none).
fn interval(text: &str) -> Option<(usize, &str, &str)> {
    let close = text.find('}')?;
    let inside = &text[..close];
    // `rest` is `,m`, `,` or empty.
    let (lower, rest) = inside.split_at(inside.find(',').unwrap_or(inside.len()));
    let upper = rest.strip_prefix(',').unwrap_or(rest);
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let valid = digits(lower) && digits(upper) && !(lower.is_empty() && upper.is_empty());
    valid.then_some((close + 1, lower, rest))
}

/// The pattern between the slashes and the options after them, as
/// `check_option` and `str_to_regex` split them.
fn split_options(pattern: &str) -> (&str, &str) {
    let Some(rest) = pattern.strip_prefix('/') else {
        return (pattern, "");
    };
    let Some(last) = rest.rfind('/') else {
        return (pattern, "");
    };
    let (body, options) = (&rest[..last], &rest[last + 1..]);
    if options.chars().all(|c| matches!(c, 'i' | 'm' | 'x' | 'o')) {
        (body, options)
    } else {
        (pattern, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashes_and_options_as_fluent_bit_reads_them() {
        assert_eq!(split_options(r"^\s+at"), (r"^\s+at", ""));
        assert_eq!(split_options(r"/^\s+at.*/"), (r"^\s+at.*", ""));
        assert_eq!(split_options("/a/b/"), ("a/b", ""));
        assert_eq!(split_options("/error/i"), ("error", "i"));
        assert_eq!(split_options("/a/mx"), ("a", "mx"));
        // An unknown option: the text is the pattern, slashes and all.
        assert_eq!(split_options("/a/b"), ("/a/b", ""));
        assert_eq!(split_options("/"), ("/", ""));
    }

    #[test]
    fn ruby_semantics() {
        assert!(regex("/ERROR/i").unwrap().is_match("an error"));
        assert!(!regex("/ERROR/").unwrap().is_match("an error"));
        // `^` and `$` at lines, as in Ruby.
        assert!(regex("^b$").unwrap().is_match("a\nb\nc"));
        assert!(!regex("a.b").unwrap().is_match("a\nb"));
        assert!(regex("/a.b/m").unwrap().is_match("a\nb"));
        assert!(regex("/a b/x").unwrap().is_match("ab"));
        // Escaped punctuation, as AWS's example writes it.
        assert!(regex(r"/(Dec \d+ \d+\:\d+\:\d+)(.*)/")
            .unwrap()
            .is_match("Dec 14 06:41:08 Exception"));
        assert!(regex(r"(?<=a)b").is_err());
    }

    /// Each pattern, and the lines of `café`, `cafe`, `<tag>`, `٣` (an
    /// Arabic-Indic three), `a b`, `x\ty` it matches: Fluent Bit v5.1.1's
    /// grep filter kept exactly these.
    #[test]
    fn ruby_escapes_mean_what_they_mean_to_fluent_bit() {
        let lines = ["café", "cafe", "<tag>", "\u{663}", "a b", "x\ty"];
        let cases: [(&str, &[&str]); 9] = [
            (r"^\w+$", &["cafe"]),
            (r"^\d$", &[]),
            (r"^\<tag\>$", &["<tag>"]),
            (r"^\h+$", &["cafe"]),
            (r"^a\sb$", &["a b"]),
            (r"^x\sy$", &["x\ty"]),
            (r"\bca", &["café", "cafe"]),
            (r"caf\b", &[]),
            (r"^[\w]+$", &["cafe"]),
        ];
        for (pattern, kept) in cases {
            let re = regex(pattern).unwrap();
            let got: Vec<&str> = lines.iter().copied().filter(|l| re.is_match(l)).collect();
            assert_eq!(got, kept, "{pattern}");
        }
    }

    /// Checked against Fluent Bit v5.1.1's parser filter
    /// (`scripts/same_as_fluent_bit.py`): aws-for-fluent-bit's
    /// `plugin-metrics-parser.conf` writes `{name=` unescaped.
    #[test]
    fn a_brace_that_opens_no_interval_is_the_character() {
        assert_eq!(
            ruby_escapes(r#"^(?<m>[^ {}]*){name=\"(?<p>[^ {}\"]*)\"} x{2}y{,2}z{1,}w{2,3}q{}k{,}"#),
            r#"^(?<m>[^ {}]*)\{name=\"(?<p>[^ {}\"]*)\"\} x{2}y{0,2}z{1,}w{2,3}q\{\}k\{,\}"#
        );
        // An escape's own braces stay as they are.
        assert_eq!(
            ruby_escapes(r"\p{Lu}\x{41}{2}\P{L}"),
            r"\p{Lu}\x{41}{2}\P{L}"
        );
        assert!(regex(r"^\p{Lu}\x{41}{2}$").unwrap().is_match("ÉAA"));
        let prom =
            regex(r#"^(?<metric>[^ {}]*){name=\"(?<plugin>[^ {}\"]*)\"} (?<value>[^ ]*)"#).unwrap();
        let line = r#"fluentbit_output_retries_total{name="cloudwatch_logs.1"} 3"#;
        let caps = prom.captures(line).unwrap();
        assert_eq!(
            (&caps["metric"], &caps["plugin"], &caps["value"]),
            ("fluentbit_output_retries_total", "cloudwatch_logs.1", "3")
        );
    }

    #[test]
    fn escapes_in_and_out_of_brackets() {
        assert_eq!(ruby_escapes(r"\d+\D"), r"[0-9]+[^0-9]");
        assert_eq!(ruby_escapes(r"[\w.-]+"), r"[0-9A-Za-z_.-]+");
        assert_eq!(ruby_escapes(r"[^\s\]]"), r"[^\t\n\x0B\x0C\r\x20\]]");
        assert_eq!(
            ruby_escapes(r"[\W[:alpha:]]\S"),
            r"[[:^word:][:alpha:]][^\t\n\x0B\x0C\r\x20]"
        );
        assert_eq!(ruby_escapes(r"[]\d]\d"), r"[]0-9][0-9]");
        assert_eq!(ruby_escapes(r"\\d\.\[\d"), r"\\d\.\[[0-9]");
        assert_eq!(
            ruby_escapes(r"^\<(?<pri>\d+)\>"),
            r"^\x3C(?<pri>[0-9]+)\x3E"
        );
        assert_eq!(ruby_escapes("trailing\\"), "trailing\\");
        // Blanks of `\s` survive the `x` option.
        assert!(regex(r"/a \s b/x").unwrap().is_match("a\tb"));
        assert!(!regex(r"/a \s b/x").unwrap().is_match("ab"));
    }
}
