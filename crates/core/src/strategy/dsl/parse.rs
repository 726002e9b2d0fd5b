//! Reader for symphony files: s-expressions with lists `( )`, vectors `[ ]`, maps
//! `{ :key value }`, strings, numbers, keywords (`:window`) and symbols; `;` starts a
//! comment. Every value carries its line and column for error messages.

use std::fmt;

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum SExpr {
    List(Vec<SExpr>, Span),
    Vector(Vec<SExpr>, Span),
    /// Key-value pairs in file order; keys are keywords without the colon.
    Map(Vec<(String, SExpr)>, Span),
    Str(String, Span),
    /// The number's text is kept so weights parse exactly as decimals.
    Num(String, Span),
    Keyword(String, Span),
    Symbol(String, Span),
}

impl SExpr {
    pub fn span(&self) -> Span {
        match self {
            SExpr::List(_, s)
            | SExpr::Vector(_, s)
            | SExpr::Map(_, s)
            | SExpr::Str(_, s)
            | SExpr::Num(_, s)
            | SExpr::Keyword(_, s)
            | SExpr::Symbol(_, s) => *s,
        }
    }

    /// What the value is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            SExpr::List(items, _) => match items.first() {
                Some(SExpr::Symbol(head, _)) => format!("form `({head} ...)`"),
                _ => "a list".into(),
            },
            SExpr::Vector(..) => "a vector `[...]`".into(),
            SExpr::Map(..) => "a map `{...}`".into(),
            SExpr::Str(s, _) => format!("string \"{s}\""),
            SExpr::Num(n, _) => format!("number {n}"),
            SExpr::Keyword(k, _) => format!("keyword :{k}"),
            SExpr::Symbol(s, _) => format!("symbol `{s}`"),
        }
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{span}: {message}")]
pub struct ParseError {
    pub span: Span,
    pub message: String,
}

/// How deep brackets may nest. The reader, the tree builder and the evaluator recurse
/// once per level, so a bound here keeps every one of them inside a thread's stack
/// (a real symphony nests a few dozen levels; a file nested thousands deep is refused
/// with its position instead of overflowing the stack).
pub const MAX_DEPTH: usize = 200;

struct Reader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: u32,
    column: u32,
    /// Brackets open around the position being read.
    depth: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            chars: text.chars().peekable(),
            line: 1,
            column: 1,
            depth: 0,
        }
    }

    fn span(&self) -> Span {
        Span {
            line: self.line,
            column: self.column,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn skip_trivia(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c.is_whitespace() || c == ',' {
                self.bump();
            } else if c == ';' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn error<T>(&self, span: Span, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            span,
            message: message.into(),
        })
    }

    fn read(&mut self) -> Result<Option<SExpr>, ParseError> {
        self.skip_trivia();
        let span = self.span();
        let Some(&c) = self.chars.peek() else {
            return Ok(None);
        };
        let value = match c {
            '(' => {
                self.bump();
                SExpr::List(self.read_until(')', span)?, span)
            }
            '[' => {
                self.bump();
                SExpr::Vector(self.read_until(']', span)?, span)
            }
            '{' => {
                self.bump();
                let items = self.read_until('}', span)?;
                let mut pairs = Vec::new();
                let mut it = items.into_iter();
                while let Some(k) = it.next() {
                    let SExpr::Keyword(key, _) = k else {
                        return self.error(
                            k.span(),
                            format!("expected a keyword key in map, found {}", k.describe()),
                        );
                    };
                    let Some(v) = it.next() else {
                        return self.error(span, format!("map key :{key} has no value"));
                    };
                    pairs.push((key, v));
                }
                SExpr::Map(pairs, span)
            }
            ')' | ']' | '}' => return self.error(span, format!("unexpected `{c}`")),
            '"' => {
                self.bump();
                let mut s = String::new();
                loop {
                    match self.bump() {
                        None => return self.error(span, "unterminated string"),
                        Some('"') => break,
                        Some('\\') => match self.bump() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(other) => s.push(other),
                            None => return self.error(span, "unterminated string"),
                        },
                        Some(other) => s.push(other),
                    }
                }
                SExpr::Str(s, span)
            }
            _ => {
                let mut atom = String::new();
                while let Some(&c) = self.chars.peek() {
                    if c.is_whitespace() || "()[]{}\",;".contains(c) {
                        break;
                    }
                    atom.push(c);
                    self.bump();
                }
                if let Some(k) = atom.strip_prefix(':') {
                    if k.is_empty() {
                        return self.error(span, "empty keyword `:`");
                    }
                    SExpr::Keyword(k.to_string(), span)
                } else if looks_numeric(&atom) {
                    if atom.parse::<f64>().is_err() {
                        return self.error(span, format!("`{atom}` is not a number"));
                    }
                    SExpr::Num(atom, span)
                } else {
                    SExpr::Symbol(atom, span)
                }
            }
        };
        Ok(Some(value))
    }

    fn read_until(&mut self, close: char, open: Span) -> Result<Vec<SExpr>, ParseError> {
        if self.depth >= MAX_DEPTH {
            return self.error(
                open,
                format!("forms nest deeper than {MAX_DEPTH} levels here"),
            );
        }
        self.depth += 1;
        let items = self.read_items(close, open);
        self.depth -= 1;
        items
    }

    fn read_items(&mut self, close: char, open: Span) -> Result<Vec<SExpr>, ParseError> {
        let mut items = Vec::new();
        loop {
            self.skip_trivia();
            match self.chars.peek() {
                None => {
                    return self.error(
                        open,
                        format!("unclosed form opened here: missing `{close}`"),
                    )
                }
                Some(&c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => match self.read()? {
                    Some(v) => items.push(v),
                    None => return self.error(open, format!("missing `{close}`")),
                },
            }
        }
    }
}

fn looks_numeric(atom: &str) -> bool {
    let body = atom.strip_prefix(['-', '+']).unwrap_or(atom);
    body.starts_with(|c: char| c.is_ascii_digit() || c == '.') && !body.is_empty() && body != "."
}

/// Reads every top-level value of `text`.
pub fn read_all(text: &str) -> Result<Vec<SExpr>, ParseError> {
    let mut reader = Reader::new(text);
    let mut out = Vec::new();
    while let Some(v) = reader.read()? {
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_forms_with_positions() {
        let v = read_all("; c\n(a [1 -2.5] {:k \"s\"})").unwrap();
        let SExpr::List(items, span) = &v[0] else {
            panic!()
        };
        assert_eq!(*span, Span { line: 2, column: 1 });
        assert_eq!(
            items[0],
            SExpr::Symbol("a".into(), Span { line: 2, column: 2 })
        );
        let SExpr::Vector(nums, _) = &items[1] else {
            panic!()
        };
        assert_eq!(
            nums[1],
            SExpr::Num("-2.5".into(), Span { line: 2, column: 7 })
        );
        let SExpr::Map(pairs, _) = &items[2] else {
            panic!()
        };
        assert_eq!(pairs[0].0, "k");
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert_eq!(
            read_all("(a\n  (b)").unwrap_err().to_string(),
            "1:1: unclosed form opened here: missing `)`"
        );
        assert_eq!(
            read_all("(a))").unwrap_err().to_string(),
            "1:4: unexpected `)`"
        );
        assert_eq!(
            read_all("{:a}").unwrap_err().to_string(),
            "1:1: map key :a has no value"
        );
        assert_eq!(
            read_all("\"abc").unwrap_err().to_string(),
            "1:1: unterminated string"
        );
        assert_eq!(
            read_all("(x 1.2.3)").unwrap_err().to_string(),
            "1:4: `1.2.3` is not a number"
        );
    }
}
