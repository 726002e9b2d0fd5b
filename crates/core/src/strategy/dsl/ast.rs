//! The typed form of a symphony, built from s-expressions with every arity and type
//! checked; errors say what was expected and where.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;

use super::parse::{ParseError, SExpr, Span};
use crate::domain::Symbol;
use crate::indicators::{Indicator, IndicatorKind};

#[derive(Clone, Debug, PartialEq)]
pub struct Symphony {
    pub name: String,
    /// Options such as `:rebalance-threshold`, kept as text and otherwise ignored.
    pub options: BTreeMap<String, String>,
    pub body: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Asset {
        symbol: Symbol,
        span: Span,
    },
    Group {
        name: String,
        children: Vec<Node>,
    },
    WeightEqual(Vec<Node>),
    WeightSpecified(Vec<(Decimal, Node)>),
    InverseVolatility {
        window: usize,
        children: Vec<Node>,
        span: Span,
    },
    If {
        condition: Condition,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Filter {
        metric: Indicator,
        select: Select,
        children: Vec<Node>,
        span: Span,
    },
}

impl Node {
    /// The nodes directly beneath this one, in file order (both branches of an `if`):
    /// what a walk over the whole tree visits next.
    pub fn children(&self) -> Vec<&Node> {
        match self {
            Node::Asset { .. } => Vec::new(),
            Node::Group { children, .. }
            | Node::WeightEqual(children)
            | Node::InverseVolatility { children, .. }
            | Node::Filter { children, .. } => children.iter().collect(),
            Node::WeightSpecified(pairs) => pairs.iter().map(|(_, child)| child).collect(),
            Node::If {
                then, otherwise, ..
            } => then.iter().chain(otherwise).collect(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    Top(usize),
    Bottom(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Gt,
    Lt,
    Ge,
    Le,
    /// Equal to 6 decimals (the precision indicator values are reported with): exact
    /// equality of computed floats would hardly ever hold.
    Eq,
}

impl Comparison {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Comparison::Gt => a > b,
            Comparison::Lt => a < b,
            Comparison::Ge => a >= b,
            Comparison::Le => a <= b,
            Comparison::Eq => (a * 1e6).round() == (b * 1e6).round(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub comparison: Comparison,
    pub left: Operand,
    pub right: Operand,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Number(f64),
    Call(IndicatorCall),
}

#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorCall {
    pub indicator: Indicator,
    pub symbol: Symbol,
    pub span: Span,
}

type Result<T> = std::result::Result<T, ParseError>;

fn err<T>(span: Span, message: impl Into<String>) -> Result<T> {
    Err(ParseError {
        span,
        message: message.into(),
    })
}

/// Builds the symphony from the file's top-level values (exactly one `defsymphony`).
pub fn symphony(values: &[SExpr]) -> Result<Symphony> {
    let [value] = values else {
        let span = values.get(1).map(SExpr::span).unwrap_or_default();
        return err(
            span,
            format!(
                "expected exactly one (defsymphony ...) form, found {}",
                values.len()
            ),
        );
    };
    let (head, args, span) = form(value)?;
    if head != "defsymphony" {
        return err(
            span,
            format!("expected (defsymphony ...), found ({head} ...)"),
        );
    }
    let [name, options, body] = args else {
        return err(
            span,
            format!(
                "defsymphony takes a name, an options map and a body; got {} arguments",
                args.len()
            ),
        );
    };
    let name = string(name, "the symphony's name")?;
    let options = match options {
        SExpr::Map(pairs, _) => header_options(pairs)?,
        SExpr::Symbol(s, _) if s == "nil" => BTreeMap::new(),
        other => {
            return err(
                other.span(),
                format!("expected an options map, found {}", other.describe()),
            )
        }
    };
    Ok(Symphony {
        name,
        options,
        body: nodes(body)?,
    })
}

/// How far `weight-specified` weights may miss 1 (or 100) as a share of it: thirds
/// written to six places still sum to 1 up to this.
const WEIGHT_SUM_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 4);

/// The header keys a symphony may set (Composer's own, as its exports write them).
pub const HEADER_KEYS: [&str; 6] = [
    "asset-class",
    "asset-classes",
    "description",
    "rebalance",
    "rebalance-frequency",
    "rebalance-threshold",
];

/// A header's options, each key known and none set twice or in two disagreeing
/// spellings (`:rebalance` and `:rebalance-frequency`): a misspelt `:rebalnce` would
/// otherwise be ignored and the file traded daily.
fn header_options(pairs: &[(String, SExpr)]) -> Result<BTreeMap<String, String>> {
    let mut options = BTreeMap::new();
    for (key, value) in pairs {
        if !HEADER_KEYS.contains(&key.as_str()) {
            let known: Vec<String> = HEADER_KEYS.iter().map(|k| format!(":{k}")).collect();
            return err(
                value.span(),
                format!(
                    "unknown header key :{key}: expected one of {}",
                    known.join(", ")
                ),
            );
        }
        let text = atom_text(value);
        if options.insert(key.clone(), text).is_some() {
            return err(value.span(), format!("header key :{key} is set twice"));
        }
    }
    if let (Some(a), Some(b)) = (options.get("rebalance"), options.get("rebalance-frequency")) {
        if a != b {
            let span = pairs
                .iter()
                .rev()
                .find(|(k, _)| k == "rebalance" || k == "rebalance-frequency")
                .map_or(Span::default(), |(_, v)| v.span());
            return err(
                span,
                format!(
                    "header keys disagree: :rebalance {a} but :rebalance-frequency {b}; keep one"
                ),
            );
        }
    }
    Ok(options)
}

fn atom_text(v: &SExpr) -> String {
    match v {
        SExpr::Str(s, _) | SExpr::Num(s, _) | SExpr::Symbol(s, _) => s.clone(),
        SExpr::Keyword(k, _) => format!(":{k}"),
        other => other.describe(),
    }
}

fn form(v: &SExpr) -> Result<(&str, &[SExpr], Span)> {
    match v {
        SExpr::List(items, span) => match items.split_first() {
            Some((SExpr::Symbol(head, _), rest)) => Ok((head.as_str(), rest, *span)),
            Some((other, _)) => err(
                other.span(),
                format!("expected a form name, found {}", other.describe()),
            ),
            None => err(*span, "empty form `()`"),
        },
        other => err(
            other.span(),
            format!("expected a form `(...)`, found {}", other.describe()),
        ),
    }
}

fn string(v: &SExpr, what: &str) -> Result<String> {
    match v {
        SExpr::Str(s, _) => Ok(s.clone()),
        other => err(
            other.span(),
            format!("expected {what} as a string, found {}", other.describe()),
        ),
    }
}

/// A symbol string, in the engine's notation (`BRK/B` becomes `BRK.B`).
fn ticker(v: &SExpr, what: &str) -> Result<crate::domain::Symbol> {
    let text = string(v, what)?;
    crate::domain::parse_symbol(&text).or_else(|why| err(v.span(), why))
}

fn whole(v: &SExpr, what: &str) -> Result<usize> {
    match v {
        SExpr::Num(n, span) => n
            .parse::<usize>()
            .or_else(|_| match n.parse::<f64>() {
                Ok(f) if f >= 0.0 && f.fract() == 0.0 => Ok(f as usize),
                _ => Err(()),
            })
            .or_else(|_| {
                err(
                    *span,
                    format!("expected {what} as a whole number, found {n}"),
                )
            }),
        other => err(
            other.span(),
            format!(
                "expected {what} as a whole number, found {}",
                other.describe()
            ),
        ),
    }
}

/// A vector of nodes, or one node.
fn nodes(v: &SExpr) -> Result<Vec<Node>> {
    match v {
        SExpr::Vector(items, span) => {
            if items.is_empty() {
                return err(*span, "empty vector: expected at least one node");
            }
            items.iter().map(node).collect()
        }
        other => Ok(vec![node(other)?]),
    }
}

fn vector_of_nodes(v: &SExpr, what: &str) -> Result<Vec<Node>> {
    match v {
        SExpr::Vector(..) => nodes(v),
        other => err(
            other.span(),
            format!(
                "expected {what} as a vector `[...]`, found {}",
                other.describe()
            ),
        ),
    }
}

fn node(v: &SExpr) -> Result<Node> {
    let (head, args, span) = form(v)?;
    match head {
        "asset" => match args {
            [symbol] | [symbol, _] => Ok(Node::Asset {
                symbol: ticker(symbol, "the asset's symbol")?,
                span,
            }),
            _ => err(span, format!("asset takes a symbol and an optional name; got {} arguments", args.len())),
        },
        "group" => match args {
            [name, children] => Ok(Node::Group {
                name: string(name, "the group's name")?,
                children: vector_of_nodes(children, "the group's nodes")?,
            }),
            _ => err(span, format!("group takes a name and a vector of nodes; got {} arguments", args.len())),
        },
        "weight-equal" => match args {
            [children] => Ok(Node::WeightEqual(vector_of_nodes(children, "the nodes to weight")?)),
            _ => err(span, format!("weight-equal takes one vector of nodes; got {} arguments", args.len())),
        },
        "weight-specified" => {
            if args.is_empty() || args.len() % 2 != 0 {
                return err(span, format!("weight-specified takes weight/node pairs; got {} arguments", args.len()));
            }
            let mut pairs = Vec::new();
            for pair in args.chunks(2) {
                let weight = match &pair[0] {
                    SExpr::Num(n, s) => Decimal::from_str(n)
                        .or_else(|_| Decimal::from_scientific(n))
                        .or_else(|_| err(*s, format!("weight {}", crate::readable::not_a_decimal(n))))?,
                    other => return err(other.span(), format!("expected a weight, found {}", other.describe())),
                };
                if weight < Decimal::ZERO {
                    return err(pair[0].span(), format!("weight {weight} is negative"));
                }
                pairs.push((weight, node(&pair[1])?));
            }
            if pairs.iter().all(|(w, _)| w.is_zero()) {
                return err(span, "weight-specified weights are all zero");
            }
            // Fractions of 1 or percentages, up to rounding in the last places; any
            // other sum is a typo, never rescaled in silence.
            let sum: Decimal = pairs.iter().map(|(w, _)| *w).sum();
            let near = |target: Decimal| (sum - target).abs() <= target * WEIGHT_SUM_TOLERANCE;
            if !near(Decimal::ONE) && !near(Decimal::ONE_HUNDRED) {
                return err(span, format!("weight-specified weights sum to {sum}: they must sum to 1 (or 100 as percentages)"));
            }
            Ok(Node::WeightSpecified(pairs))
        }
        "weight-inverse-volatility" => match args {
            [window, children] => Ok(Node::InverseVolatility {
                window: whole(window, "the volatility window")?,
                children: vector_of_nodes(children, "the nodes to weight")?,
                span,
            }),
            _ => err(span, format!("weight-inverse-volatility takes a window and a vector of nodes; got {} arguments", args.len())),
        },
        "if" => match args {
            [condition_expr, then, otherwise] => Ok(Node::If {
                condition: condition(condition_expr)?,
                then: vector_of_nodes(then, "the then-branch")?,
                otherwise: vector_of_nodes(otherwise, "the else-branch")?,
            }),
            _ => err(span, format!("if takes a condition, a then-vector and an else-vector; got {} arguments", args.len())),
        },
        "filter" => match args {
            [metric, select, children] => {
                let (m_head, m_args, m_span) = form(metric)?;
                let indicator = match m_args {
                    [opts] => indicator_of(m_head, Some(opts), m_span)?,
                    [] => indicator_of(m_head, None, m_span)?,
                    _ => return err(m_span, format!("a filter metric takes only an options map, e.g. ({m_head} {{:window 10}}); got {} arguments", m_args.len())),
                };
                let (s_head, s_args, s_span) = form(select)?;
                let k = match s_args {
                    [k] => whole(k, "the number to select")?,
                    _ => return err(s_span, format!("{s_head} takes one number")),
                };
                if k == 0 {
                    return err(s_span, "selecting 0 nodes leaves nothing to hold");
                }
                let select = match s_head {
                    "select-top" => Select::Top(k),
                    "select-bottom" => Select::Bottom(k),
                    other => return err(s_span, format!("expected (select-top K) or (select-bottom K), found ({other} ...)")),
                };
                Ok(Node::Filter {
                    metric: indicator,
                    select,
                    children: vector_of_nodes(children, "the candidates")?,
                    span,
                })
            }
            _ => err(span, format!("filter takes a metric, a selection and a vector of nodes; got {} arguments", args.len())),
        },
        other => err(span, format!("unknown form `{other}`: expected asset, group, weight-equal, weight-specified, weight-inverse-volatility, if or filter")),
    }
}

fn indicator_of(name: &str, options: Option<&SExpr>, span: Span) -> Result<Indicator> {
    let Some(kind) = IndicatorKind::from_name(name) else {
        let known: Vec<&str> = IndicatorKind::ALL.iter().map(|k| k.name()).collect();
        return err(
            span,
            format!(
                "unknown indicator `{name}`: expected one of {}",
                known.join(", ")
            ),
        );
    };
    let window = match (kind.takes_window(), options) {
        (false, None) => 0,
        (false, Some(SExpr::Map(pairs, _))) if pairs.is_empty() => 0,
        (false, Some(other)) => return err(other.span(), format!("{name} takes no options")),
        (true, Some(SExpr::Map(pairs, s))) => {
            let window = pairs
                .iter()
                .find(|(k, _)| k == "window")
                .ok_or_else(|| ParseError {
                    span: *s,
                    message: format!("{name} needs {{:window N}}"),
                })?;
            if let Some((k, v)) = pairs.iter().find(|(k, _)| k != "window") {
                return err(v.span(), format!("{name}: unknown option :{k}"));
            }
            let w = whole(&window.1, "the window")?;
            if w < kind.min_window() {
                return err(
                    window.1.span(),
                    format!(
                        "{name}: window must be at least {} (got {w})",
                        kind.min_window()
                    ),
                );
            }
            w
        }
        (true, Some(other)) => {
            return err(
                other.span(),
                format!("expected {{:window N}}, found {}", other.describe()),
            )
        }
        (true, None) => return err(span, format!("{name} needs {{:window N}}")),
    };
    Ok(Indicator::new(kind, window))
}

fn operand(v: &SExpr) -> Result<Operand> {
    match v {
        SExpr::Num(n, span) => n
            .parse::<f64>()
            .map(Operand::Number)
            .or_else(|_| err(*span, format!("`{n}` is not a number"))),
        SExpr::List(..) => {
            let (head, args, span) = form(v)?;
            let (symbol, options) = match args {
                [symbol] => (symbol, None),
                [symbol, options] => (symbol, Some(options)),
                _ => {
                    return err(
                        span,
                        format!(
                        "an indicator call is ({head} \"SYMBOL\" {{:window N}}); got {} arguments",
                        args.len()
                    ),
                    )
                }
            };
            let symbol = ticker(symbol, "the indicator's symbol")?;
            Ok(Operand::Call(IndicatorCall {
                indicator: indicator_of(head, options, span)?,
                symbol,
                span,
            }))
        }
        other => err(
            other.span(),
            format!(
                "expected an indicator call or a number, found {}",
                other.describe()
            ),
        ),
    }
}

fn condition(v: &SExpr) -> Result<Condition> {
    let (head, args, span) = form(v)?;
    let comparison = match head {
        ">" => Comparison::Gt,
        "<" => Comparison::Lt,
        ">=" => Comparison::Ge,
        "<=" => Comparison::Le,
        "=" => Comparison::Eq,
        other => {
            return err(
                span,
                format!("expected a comparison (> < >= <= =), found ({other} ...)"),
            )
        }
    };
    let [left, right] = args else {
        return err(
            span,
            format!("{head} compares two values; got {}", args.len()),
        );
    };
    Ok(Condition {
        comparison,
        left: operand(left)?,
        right: operand(right)?,
        span,
    })
}
