//! The symphony language: Composer-style s-expression strategy files.
//!
//! `parse` reads text into located s-expressions, `ast` checks them into a typed
//! [`Symphony`], `eval` evaluates it as of a day. Errors carry `line:column`; the
//! strategy book prefixes the file name.

pub mod ast;
pub mod eval;
pub mod parse;

pub use ast::Symphony;
pub use eval::{evaluate, evaluate_remembering, EvalError, Evaluation, GroupMemo};
pub use parse::{ParseError, Span};

/// Parses a whole symphony file.
pub fn parse_symphony(text: &str) -> Result<Symphony, ParseError> {
    ast::symphony(&parse::read_all(crate::readable::without_bom(text))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_symphony(text).unwrap_err().to_string()
    }

    #[test]
    fn shape_errors_say_what_was_expected_and_where() {
        assert_eq!(
            err("(defsymphony \"x\" {})"),
            "1:1: defsymphony takes a name, an options map and a body; got 2 arguments"
        );
        assert_eq!(
            err("(defsymphony x {} (asset \"A\"))"),
            "1:14: expected the symphony's name as a string, found symbol `x`"
        );
        assert_eq!(
            err("(defsymphony \"x\" {}\n (group \"g\" (asset \"A\")))"),
            "2:13: expected the group's nodes as a vector `[...]`, found form `(asset ...)`"
        );
        assert_eq!(
            err("(defsymphony \"x\" {} (weight-specified 0.5 (asset \"A\") 0.5))"),
            "1:21: weight-specified takes weight/node pairs; got 3 arguments"
        );
        assert_eq!(
            err("(defsymphony \"x\" {} (if (> (rsi \"A\") 5) [(asset \"A\")] [(asset \"B\")]))"),
            "1:28: rsi needs {:window N}"
        );
        assert!(err("(defsymphony \"x\" {} (if (> (rsx \"A\" {:window 2}) 5) [(asset \"A\")] [(asset \"B\")]))").starts_with("1:28: unknown indicator `rsx`: expected one of rsi, "));
        assert_eq!(
            err("(defsymphony \"x\" {} (if (!= 1 2) [(asset \"A\")] [(asset \"B\")]))"),
            "1:25: expected a comparison (> < >= <= =), found (!= ...)"
        );
        assert_eq!(
            err("(defsymphony \"x\" {} (if (> 1 2) [(asset \"A\")]))"),
            "1:21: if takes a condition, a then-vector and an else-vector; got 2 arguments"
        );
        assert_eq!(
            err("(defsymphony \"x\" {} (filter (rsi {:window 3}) (select-top 0) [(asset \"A\")]))"),
            "1:47: selecting 0 nodes leaves nothing to hold"
        );
        assert_eq!(
            err("(defsymphony \"x\" {} (asset \"A\")) (asset \"B\")"),
            "1:34: expected exactly one (defsymphony ...) form, found 2"
        );
    }

    #[test]
    fn options_are_kept_and_names_optional() {
        let s = parse_symphony("(defsymphony \"x\" {:asset-class \"EQUITIES\" :rebalance-threshold 0.1} (asset \"SPY\"))").unwrap();
        assert_eq!(s.options["rebalance-threshold"], "0.1");
        assert_eq!(s.body.len(), 1);
    }
}
