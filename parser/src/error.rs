//! Errors of the parser crate. Classifying a line never fails (a line that is
//! not an access record is an application line); only compiling a user's
//! format string or route template can.

use std::fmt;

/// A format string or route template that cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} is invalid at column {column}: {kind}")]
pub struct Error {
    /// What was being compiled: "format string" or "route template".
    pub what: &'static str,
    /// 1-based column (in characters) where the problem starts.
    pub column: usize,
    pub kind: ErrorKind,
}

impl Error {
    /// The input with a caret under the offending column, for terminals.
    pub fn pointer(&self, input: &str) -> String {
        let pad: String = input
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{input}\n{pad}^")
    }
}

/// Why a format string or route template was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `%` is followed by something other than an operator name or `%`.
    ExpectedOperatorName,
    /// `%NAME(` has no closing `)`.
    UnclosedArgument,
    /// `%NAME(arg):` is not followed by a digit count.
    ExpectedTruncationLength,
    /// The operator is not closed by `%`.
    ExpectedClosingPercent,
    /// REQ, RESP and TRAILER need a header name.
    MissingHeaderName(String),
    /// `REQ(A?B?C)`: at most one alternative header.
    TooManyAlternatives,
    /// A format with no operator would match one constant line.
    NoOperators,
    /// More operators than a line format can reasonably hold.
    TooManyOperators(usize),
    /// A route template must start with `/`.
    TemplateNotAbsolute,
    /// A `{` in a route template without its `}`, or an empty `{}`.
    BadPlaceholder,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::ExpectedOperatorName => {
                f.write_str("expected an operator name (A-Z, 0-9, _) or '%' after '%'")
            }
            ErrorKind::UnclosedArgument => f.write_str("'(' is never closed by ')'"),
            ErrorKind::ExpectedTruncationLength => {
                f.write_str("expected a length after ':' (as in %REQ(USER-AGENT):64%)")
            }
            ErrorKind::ExpectedClosingPercent => f.write_str("expected '%' to close the operator"),
            ErrorKind::MissingHeaderName(op) => {
                write!(f, "{op} needs a header name, as in %{op}(X-REQUEST-ID)%")
            }
            ErrorKind::TooManyAlternatives => f.write_str(
                "at most one alternative header, as in %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
            ),
            ErrorKind::NoOperators => f.write_str("the format has no %OPERATOR%"),
            ErrorKind::TooManyOperators(max) => write!(f, "more than {max} operators"),
            ErrorKind::TemplateNotAbsolute => f.write_str("a route template starts with '/'"),
            ErrorKind::BadPlaceholder => {
                f.write_str("expected a placeholder such as {id} (closed by '}', not empty)")
            }
        }
    }
}
