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
//! Named groups read the same (`(?<name>…)`); what Rust's engine does not
//! have (look-around, backreferences) is an error at start, with the
//! engine's message.

use regex::{Regex, RegexBuilder};

/// Compiles `pattern` as Fluent Bit would mean it.
pub fn regex(pattern: &str) -> Result<Regex, regex::Error> {
    let (body, options) = split_options(pattern);
    let mut builder = RegexBuilder::new(body);
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
}
