//! The market snapshot id: a blake3 digest naming every bar a book holds up to a day
//! (each symbol's dates, opens and closes: what its signals and fills read).
//!
//! The digest is of one stream, day by day: a header naming the symbols, then for each
//! date on or before the day every symbol's bar that date (its index, open and close as
//! normalised decimals: see `PriceColumn::put_canonical`). A backtest's days move forward, so a [`SnapshotCursor`] keeps
//! the hasher and adds each new day's bars (one update per day, whatever the universe);
//! a step back starts again from the first bar. Asking for one day costs one pass over
//! the bars before it.

use super::MarketData;
use chrono::{Datelike, NaiveDate};

/// A hasher over the stream up to `through`, and each symbol's next bar.
#[derive(Clone, Debug)]
pub struct SnapshotCursor {
    hasher: blake3::Hasher,
    through: Option<NaiveDate>,
    /// Each symbol's next bar to hash.
    next: Vec<usize>,
    /// The earliest date of those bars.
    upcoming: Option<NaiveDate>,
    buffer: Vec<u8>,
}

impl SnapshotCursor {
    fn start(market: &MarketData) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"alchemiser.market-snapshot.v2\0");
        hasher.update(&(market.series.len() as u64).to_le_bytes());
        for symbol in market.series.keys() {
            hasher.update(symbol.as_bytes());
            hasher.update(&[0]);
        }
        Self {
            hasher,
            through: None,
            next: vec![0; market.series.len()],
            upcoming: market.series.values().filter_map(|s| s.first_date()).min(),
            buffer: Vec::new(),
        }
    }

    /// The id of `market`'s bars dated on or before `as_of`. `market` must be the data
    /// this cursor has walked so far (the book's own, which does not change).
    pub fn id(cursor: &mut Option<Self>, market: &MarketData, as_of: NaiveDate) -> String {
        let forward = cursor
            .as_ref()
            .is_some_and(|c| c.next.len() == market.series.len() && c.through <= Some(as_of));
        if !forward {
            *cursor = None;
        }
        let c = cursor.get_or_insert_with(|| Self::start(market));
        c.advance(market, as_of);
        c.hasher.finalize().to_hex().to_string()
    }

    fn advance(&mut self, market: &MarketData, as_of: NaiveDate) {
        // One pass over the symbols per day: it writes the day's bars and finds the
        // next day on which any symbol has one.
        while let Some(day) = self.upcoming.filter(|d| *d <= as_of) {
            self.buffer.clear();
            self.buffer
                .extend_from_slice(&day.num_days_from_ce().to_le_bytes());
            let mut following: Option<NaiveDate> = None;
            for (index, (series, next)) in market.series.values().zip(&mut self.next).enumerate() {
                let dates = series.dates();
                if dates.get(*next) == Some(&day) {
                    self.buffer.extend_from_slice(&(index as u32).to_le_bytes());
                    series.put_canonical_open_close(*next, &mut self.buffer);
                    *next += 1;
                }
                if let Some(d) = dates.get(*next) {
                    following = Some(following.map_or(*d, |f| f.min(*d)));
                }
            }
            self.hasher.update(&self.buffer);
            self.upcoming = following;
        }
        self.through = Some(as_of);
    }
}

/// The id of `market`'s bars on or before `as_of`, computed afresh.
pub fn snapshot_id(market: &MarketData, as_of: NaiveDate) -> String {
    SnapshotCursor::id(&mut None, market, as_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{BarSeries, DailyBar};
    use chrono::Days;
    use rust_decimal::Decimal;
    use std::sync::Arc;

    /// A bar: days after 2020-01-01, then its price's mantissa and scale.
    type Bar = (u64, i64, u32);

    fn market(series: &[(&str, &[Bar])]) -> MarketData {
        let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        MarketData {
            series: series
                .iter()
                .map(|(symbol, bars)| {
                    let bars = bars
                        .iter()
                        .map(|(day, m, scale)| {
                            DailyBar::flat(start + Days::new(*day), Decimal::new(*m, *scale))
                        })
                        .collect();
                    (
                        (*symbol).into(),
                        Arc::new(BarSeries::new((*symbol).into(), bars)),
                    )
                })
                .collect(),
        }
    }

    fn day(d: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Days::new(d)
    }

    /// Walking forward, stepping back, jumping: the cursor gives what a fresh
    /// computation gives; and the id moves only when a bar on or before the day does.
    #[test]
    fn the_cursor_agrees_with_a_fresh_computation_and_ids_name_the_bars() {
        let m = market(&[
            ("AAA", &[(0, 100, 0), (1, 101, 0), (5, 102, 0)]),
            ("BBB", &[(1, 50, 0), (2, 51, 0), (9, 52, 0)]),
        ]);
        let mut cursor = None;
        for d in [0, 1, 2, 3, 4, 5, 9, 12, 3, 3, 0, 7] {
            assert_eq!(
                SnapshotCursor::id(&mut cursor, &m, day(d)),
                snapshot_id(&m, day(d)),
                "day {d}"
            );
        }
        // No bar on days 3 and 4: the id of day 2 stands.
        assert_eq!(snapshot_id(&m, day(2)), snapshot_id(&m, day(4)));
        assert_ne!(snapshot_id(&m, day(4)), snapshot_id(&m, day(5)));
        // A later bar's change does not touch an earlier day; an earlier one does.
        let later = market(&[
            ("AAA", &[(0, 100, 0), (1, 101, 0), (5, 999, 0)]),
            ("BBB", &[(1, 50, 0), (2, 51, 0), (9, 52, 0)]),
        ]);
        assert_eq!(snapshot_id(&m, day(4)), snapshot_id(&later, day(4)));
        assert_ne!(snapshot_id(&m, day(5)), snapshot_id(&later, day(5)));
        // The same price written with more places is the same bar.
        let places = market(&[
            ("AAA", &[(0, 10000, 2), (1, 101, 0), (5, 102, 0)]),
            ("BBB", &[(1, 50, 0), (2, 51, 0), (9, 52, 0)]),
        ]);
        assert_eq!(snapshot_id(&m, day(9)), snapshot_id(&places, day(9)));
        // A bar moved to another symbol or another day is another snapshot.
        let moved = market(&[
            ("AAA", &[(0, 100, 0), (1, 101, 0), (5, 102, 0)]),
            ("BBB", &[(1, 50, 0), (3, 51, 0), (9, 52, 0)]),
        ]);
        assert_ne!(snapshot_id(&m, day(4)), snapshot_id(&moved, day(4)));
        let renamed = market(&[
            ("AAA", &[(0, 100, 0), (1, 101, 0), (5, 102, 0)]),
            ("BBC", &[(1, 50, 0), (2, 51, 0), (9, 52, 0)]),
        ]);
        assert_ne!(snapshot_id(&m, day(0)), snapshot_id(&renamed, day(0)));
    }
}
