//! The symphony language: Composer-style s-expression strategy files.
//!
//! `parse` reads text into located s-expressions, `ast` checks them into a typed
//! [`Symphony`], `eval` evaluates it as of a day. Errors carry `line:column`; the
//! strategy book prefixes the file name.

pub mod ast;
pub mod eval;
pub mod parse;

pub use ast::Symphony;
pub use eval::{evaluate, EvalError, Evaluation};
pub use parse::{ParseError, Span};

/// Parses a whole symphony file.
pub fn parse_symphony(text: &str) -> Result<Symphony, ParseError> {
    ast::symphony(&parse::read_all(text)?)
}
