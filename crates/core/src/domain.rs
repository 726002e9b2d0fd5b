//! Small domain vocabulary shared by every business module: sides, order types and
//! plan actions. Money and quantities are `rust_decimal::Decimal` throughout.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Ticker symbol as the venue spells it (`"SPY"`). Stored inline (up to 24 bytes, no
/// heap allocation): symbols are cloned into every signal, price map, plan item, order
/// and fill, and those clones were a large share of a backtest's allocations.
pub type Symbol = compact_str::CompactString;

/// A ticker as a symphony writes it — Composer's share-class notation `BRK/B`, or
/// `BRK.B` — in the engine's one notation, Alpaca's: `BRK.B` in events, venue calls,
/// data file names (`BRK.B.csv`) and reports. Upper-case letters and digits, at most
/// one class separator; anything else (a path separator elsewhere, `..`, a space) is
/// refused, so a symbol never becomes a path component.
pub fn parse_symbol(text: &str) -> Result<Symbol, String> {
    let bad = |why: &str| Err(format!("`{text}` is not a ticker: {why}"));
    let (base, class) = match text.split_once(['/', '.']) {
        Some((base, class)) => (base, Some(class)),
        None => (text, None),
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    if !plain(base) || base.len() > 10 {
        return bad("expected 1 to 10 upper-case letters or digits");
    }
    match class {
        None => Ok(Symbol::from(base)),
        Some(class) if plain(class) && class.len() <= 3 => Ok(format!("{base}.{class}").into()),
        Some(_) => bad("a share class is 1 to 3 upper-case letters or digits after one `/` or `.`"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// `qty` as it moves a position: a buy adds, a sell takes away.
    pub fn signed(self, qty: Decimal) -> Decimal {
        match self {
            Side::Buy => qty,
            Side::Sell => -qty,
        }
    }
}

/// Quantities held, per symbol; a symbol at zero is not held, so not listed.
pub type Positions = std::collections::BTreeMap<Symbol, Decimal>;

/// Adds fills — `(symbol, side, quantity)` — to `positions`, each by its side, and
/// leaves out the symbols they bring to zero: the one position arithmetic of the
/// journal, the start-up check, execution, reconciliation and reports.
pub fn apply_fills<'a>(
    positions: &mut Positions,
    fills: impl IntoIterator<Item = (&'a Symbol, Side, Decimal)>,
) {
    for (symbol, side, qty) in fills {
        *positions.entry(symbol.clone()).or_default() += side.signed(qty);
    }
    positions.retain(|_, q| !q.is_zero());
}

/// `positions` as they were before the fills — `(symbol, side, quantity)` — came in.
pub fn undo_fills<'a>(
    positions: &mut Positions,
    fills: impl IntoIterator<Item = (&'a Symbol, Side, Decimal)>,
) {
    apply_fills(
        positions,
        fills
            .into_iter()
            .map(|(symbol, side, qty)| (symbol, side, -qty)),
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    #[default]
    Market,
    Limit,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "market",
            OrderType::Limit => "limit",
        }
    }
}

/// What a rebalance plan does with one symbol. Plans list sells, then buys, then holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    Sell,
    Buy,
    Hold,
}

impl PlanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Sell => "sell",
            PlanAction::Buy => "buy",
            PlanAction::Hold => "hold",
        }
    }
}

/// Whether the engine trades for real money, on paper, or replays history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    #[default]
    Paper,
    Live,
    Backtest,
}

impl RunMode {
    /// The wire name (serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Paper => "paper",
            RunMode::Live => "live",
            RunMode::Backtest => "backtest",
        }
    }
}

/// What started a workflow. The wire names are the strings journals have always held
/// (the field was a string), so payloads and their hashes do not change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The daily schedule of `alchemiser run`.
    Schedule,
    /// `run --once`, or a workflow started by hand.
    Manual,
    Backtest,
    /// Recovery's retry of a failed workflow.
    Recovery,
    /// A corrective workflow after reconciliation found drift.
    Reconciliation,
    Drill,
    Bench,
    Test,
    /// A payload from before the field existed.
    #[default]
    #[serde(rename = "")]
    Unstated,
}

impl Trigger {
    /// The wire name (serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Backtest => "backtest",
            Trigger::Recovery => "recovery",
            Trigger::Reconciliation => "reconciliation",
            Trigger::Drill => "drill",
            Trigger::Bench => "bench",
            Trigger::Test => "test",
            Trigger::Unstated => "",
        }
    }
}

crate::display_as_wire_name!(Side, OrderType, PlanAction, RunMode, Trigger);

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn fills_move_positions_by_their_side_and_a_closed_position_is_left_out() {
        let (aaa, bbb) = (Symbol::from("AAA"), Symbol::from("BBB"));
        let mut held = Positions::from([(aaa.clone(), dec!(10))]);
        apply_fills(
            &mut held,
            [(&aaa, Side::Sell, dec!(10)), (&bbb, Side::Buy, dec!(2.5))],
        );
        assert_eq!(held, Positions::from([(bbb.clone(), dec!(2.5))]));
        undo_fills(
            &mut held,
            [(&aaa, Side::Sell, dec!(10)), (&bbb, Side::Buy, dec!(2.5))],
        );
        assert_eq!(held, Positions::from([(aaa, dec!(10))]));
    }

    #[test]
    fn share_classes_map_to_one_notation_and_paths_are_refused() {
        assert_eq!(parse_symbol("SPY").unwrap(), "SPY");
        assert_eq!(parse_symbol("BRK/B").unwrap(), "BRK.B");
        assert_eq!(parse_symbol("BRK.B").unwrap(), "BRK.B");
        for bad in [
            "",
            "spy",
            "../etc",
            "A/B/C",
            "BRK/",
            "/B",
            "A B",
            "TOOLONGTICKER",
            "BRK/BBBB",
            "A\\B",
        ] {
            assert!(parse_symbol(bad).is_err(), "{bad:?}");
        }
    }
}

/// Best bid and ask, and when they were quoted (what a venue tells, what smart limit
/// pricing reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub bid: Decimal,
    pub ask: Decimal,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Quote {
    pub fn mid(&self) -> Decimal {
        (self.bid + self.ask) / Decimal::TWO
    }
}
