//! One symbol's daily bars held as columns: the dates once, the closes as the `f64`s the
//! indicators read, and the open and close as exact decimals for what is money (fills,
//! marks). High, low and volume are checked when a file is read and not kept: nothing
//! decides or trades on them, and a 20-year, 500-symbol universe is 2.6 million bars.
//! At 24 bytes a bar (8 f64 + 2 × 8 packed decimal, dates shared) that is 64 MB, where
//! whole bars with their derived copies took 270.
//!
//! Dates are a window of a [`DateAxis`] that series trading the same sessions share
//! (a universe's symbols mostly do, from their first listing to their last bar): the
//! dates are held once, and "bars up to a day" is one search per axis, not per symbol
//! ([`CountsUntil`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::DailyBar;
use crate::domain::Symbol;

/// An exact decimal in 8 bytes: the mantissa in the upper 56 bits (signed), the scale in
/// the low 8. Prices read from text have a few significant digits; a mantissa that
/// does not fit makes its whole column [`PriceColumn::Wide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PackedDecimal(i64);

impl PackedDecimal {
    const LIMIT: i128 = 1 << 55;

    fn pack(d: Decimal) -> Option<Self> {
        let m = d.mantissa();
        (-Self::LIMIT..Self::LIMIT)
            .contains(&m)
            .then(|| Self(((m as i64) << 8) | d.scale() as i64))
    }

    /// The packed form of `mantissa × 10^-scale`, when it fits.
    fn of_scaled(mantissa: i64, scale: u32) -> Option<Self> {
        (scale <= 28 && (-Self::LIMIT..Self::LIMIT).contains(&i128::from(mantissa)))
            .then(|| Self((mantissa << 8) | i64::from(scale)))
    }

    fn unpack(self) -> Decimal {
        // The scale came from a `Decimal` (at most 28): `new` cannot fail.
        Decimal::new(self.0 >> 8, (self.0 & 0xff) as u32)
    }
}

/// A normalised decimal's bytes: its scale, then its mantissa little-endian in 8 bytes,
/// or (scale + 128) then 16 bytes when the mantissa needs more than 64 bits.
fn put_normalised(m: i128, scale: u32, out: &mut Vec<u8>) {
    match i64::try_from(m) {
        Ok(m) => {
            out.push(scale as u8);
            out.extend_from_slice(&m.to_le_bytes());
        }
        Err(_) => {
            out.push(scale as u8 | 0x80);
            out.extend_from_slice(&m.to_le_bytes());
        }
    }
}

/// A column of exact prices, packed while every value fits.
#[derive(Clone, Debug)]
enum PriceColumn {
    Packed(Vec<PackedDecimal>),
    Wide(Vec<Decimal>),
}

impl PriceColumn {
    fn with_capacity(n: usize) -> Self {
        PriceColumn::Packed(Vec::with_capacity(n))
    }

    /// The column of `mantissas × 10^-scale`.
    fn of_scaled(mantissas: &[i64], scale: u32) -> Self {
        let packed: Option<Vec<PackedDecimal>> = mantissas
            .iter()
            .map(|m| PackedDecimal::of_scaled(*m, scale))
            .collect();
        match packed {
            Some(p) => PriceColumn::Packed(p),
            None => PriceColumn::Wide(
                mantissas
                    .iter()
                    .map(|m| Decimal::try_new(*m, scale).unwrap_or_default())
                    .collect(),
            ),
        }
    }

    fn push(&mut self, d: Decimal) {
        match self {
            PriceColumn::Packed(v) => match PackedDecimal::pack(d) {
                Some(p) => v.push(p),
                None => {
                    let mut wide: Vec<Decimal> = v.iter().map(|p| p.unpack()).collect();
                    wide.push(d);
                    *self = PriceColumn::Wide(wide);
                }
            },
            PriceColumn::Wide(v) => v.push(d),
        }
    }

    /// Value `i` by value, not by writing ("1.20" and "1.2" alike), from its normalised
    /// mantissa and scale ([`put_normalised`]).
    fn put_canonical(&self, i: usize, out: &mut Vec<u8>) {
        let (m, scale) = match self {
            PriceColumn::Packed(v) => v.get(i).map_or((0, 0), |p| {
                // Trailing zeros off in 64 bits (128-bit division was felt per bar).
                let (mut m, mut scale) = (p.0 >> 8, (p.0 & 0xff) as u32);
                while scale > 0 && m % 10 == 0 {
                    m /= 10;
                    scale -= 1;
                }
                (i128::from(m), scale)
            }),
            PriceColumn::Wide(v) => v.get(i).map_or((0, 0), |d| {
                let n = d.normalize();
                (n.mantissa(), n.scale())
            }),
        };
        put_normalised(m, scale, out);
    }

    fn get(&self, i: usize) -> Option<Decimal> {
        match self {
            PriceColumn::Packed(v) => v.get(i).map(|p| p.unpack()),
            PriceColumn::Wide(v) => v.get(i).copied(),
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            PriceColumn::Packed(v) => v.truncate(n),
            PriceColumn::Wide(v) => v.truncate(n),
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            PriceColumn::Packed(v) => v.shrink_to_fit(),
            PriceColumn::Wide(v) => v.shrink_to_fit(),
        }
    }
}

/// Ascending dates that several series may share.
pub type DateAxis = Arc<Vec<NaiveDate>>;

/// One symbol's daily bars, sorted by date (see the module's doc for what is kept).
#[derive(Clone, Debug)]
pub struct BarSeries {
    pub symbol: Symbol,
    /// This series' dates are `axis[start..start + len]`.
    axis: DateAxis,
    start: usize,
    closes: Vec<f64>,
    close_prices: PriceColumn,
    open_prices: PriceColumn,
    /// Daily returns of the closes, made when a return metric first asks (8 bytes a
    /// bar, for the symbols that need them).
    returns_pct: OnceLock<Vec<f64>>,
}

impl BarSeries {
    /// The series of `bars` (in date order, as the readers validate them), on an axis
    /// of its own.
    pub fn new(symbol: Symbol, bars: Vec<DailyBar>) -> Self {
        let mut s = Self::with_capacity(symbol, bars.len());
        for b in &bars {
            s.push(b);
        }
        s
    }

    /// The series of columns read from a columnar file: ascending `dates`, and the opens
    /// and closes as mantissas of `scale` decimal places (a store's prices), packed as
    /// they are; the closes' `f64`s are `Decimal::to_f64`'s, as for bars pushed one by one.
    pub fn from_scaled(
        symbol: Symbol,
        dates: Vec<NaiveDate>,
        opens: &[i64],
        closes: &[i64],
        scale: u32,
    ) -> Self {
        Self {
            symbol,
            axis: Arc::new(dates),
            start: 0,
            closes: closes
                .iter()
                .map(|m| {
                    Decimal::try_new(*m, scale)
                        .ok()
                        .and_then(|d| d.to_f64())
                        .unwrap_or(f64::NAN)
                })
                .collect(),
            close_prices: PriceColumn::of_scaled(closes, scale),
            open_prices: PriceColumn::of_scaled(opens, scale),
            returns_pct: OnceLock::new(),
        }
    }

    /// No bars yet, room for `n`.
    pub fn with_capacity(symbol: Symbol, n: usize) -> Self {
        Self {
            symbol,
            axis: Arc::new(Vec::with_capacity(n)),
            start: 0,
            closes: Vec::with_capacity(n),
            close_prices: PriceColumn::with_capacity(n),
            open_prices: PriceColumn::with_capacity(n),
            returns_pct: OnceLock::new(),
        }
    }

    /// Adds a bar after the last (the caller keeps dates ascending, as the readers do).
    /// A series on a shared axis takes an axis of its own first.
    pub fn push(&mut self, bar: &DailyBar) {
        let end = self.start + self.len();
        let own = match Arc::get_mut(&mut self.axis) {
            Some(axis) if end == axis.len() => Some(axis),
            _ => None,
        };
        match own {
            Some(axis) => axis.push(bar.date),
            None => {
                let mut dates = self.dates().to_vec();
                dates.push(bar.date);
                self.axis = Arc::new(dates);
                self.start = 0;
            }
        }
        self.closes.push(bar.close.to_f64().unwrap_or(f64::NAN));
        self.close_prices.push(bar.close);
        self.open_prices.push(bar.open);
        self.returns_pct = OnceLock::new();
    }

    pub fn len(&self) -> usize {
        self.closes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.closes.is_empty()
    }

    /// The bars' dates, ascending.
    pub fn dates(&self) -> &[NaiveDate] {
        &self.axis[self.start..self.start + self.len()]
    }

    /// Moves this series onto `axis` when its dates are a window of it (the same dates
    /// in a run); true if so.
    pub fn share_axis(&mut self, axis: &DateAxis) -> bool {
        let (Some(first), Some(last)) = (self.first_date(), self.last_date()) else {
            return false;
        };
        let start = axis.partition_point(|d| *d < first);
        let end = start + self.len();
        if end > axis.len() || axis[start] != first || axis[end - 1] != last {
            return false;
        }
        if Arc::ptr_eq(axis, &self.axis) {
            return start == self.start;
        }
        if axis[start..end] != *self.dates() {
            return false;
        }
        self.axis = axis.clone();
        self.start = start;
        true
    }

    /// Closes as `f64`, for indicator maths only.
    pub fn closes(&self) -> &[f64] {
        &self.closes
    }

    /// Daily percentage changes of the closes ([`crate::indicators::returns_column`]):
    /// element `i` from close `i` to close `i + 1`.
    pub fn returns_pct(&self) -> &[f64] {
        self.returns_pct
            .get_or_init(|| crate::indicators::returns_column(&self.closes))
    }

    /// Bar `i`'s close, exact.
    pub fn close(&self, i: usize) -> Option<Decimal> {
        self.close_prices.get(i)
    }

    /// Bar `i`'s open and close by value, for the market snapshot id.
    pub(crate) fn put_canonical_open_close(&self, i: usize, out: &mut Vec<u8>) {
        self.open_prices.put_canonical(i, out);
        self.close_prices.put_canonical(i, out);
    }

    /// Bar `i`'s open, exact.
    pub fn open(&self, i: usize) -> Option<Decimal> {
        self.open_prices.get(i)
    }

    /// Number of bars dated on or before `date`.
    pub fn count_until(&self, date: NaiveDate) -> usize {
        self.dates().partition_point(|d| *d <= date)
    }

    /// [`Self::count_until`] from the count of its axis' dates on or before the date.
    fn count_from_axis(&self, on_axis: usize) -> usize {
        on_axis.saturating_sub(self.start).min(self.len())
    }

    /// The series cut to its bars dated before `date` (what was known the evening before).
    pub fn before(&self, date: NaiveDate) -> Self {
        let n = self.dates().partition_point(|d| *d < date);
        let mut s = self.clone();
        s.returns_pct = OnceLock::new();
        s.closes.truncate(n);
        s.close_prices.truncate(n);
        s.open_prices.truncate(n);
        s.closes.shrink_to_fit();
        s.close_prices.shrink_to_fit();
        s.open_prices.shrink_to_fit();
        s
    }

    pub fn first_date(&self) -> Option<NaiveDate> {
        self.dates().first().copied()
    }

    /// Drops the bars dated after `last` (a backtest that ends before the data does).
    pub fn keep_until(&mut self, last: NaiveDate) {
        let n = self.count_until(last);
        if n == self.len() {
            return;
        }
        self.returns_pct = OnceLock::new();
        self.closes.truncate(n);
        self.close_prices.truncate(n);
        self.open_prices.truncate(n);
        self.closes.shrink_to_fit();
        self.close_prices.shrink_to_fit();
        self.open_prices.shrink_to_fit();
    }

    /// Bytes this series holds in its own columns, and its axis (address, bytes): what
    /// the benchmarks report per bar, counting a shared axis once.
    pub fn held_bytes(&self) -> (usize, (usize, usize)) {
        let prices = |c: &PriceColumn| match c {
            PriceColumn::Packed(v) => v.capacity() * 8,
            PriceColumn::Wide(v) => v.capacity() * 16,
        };
        let returns = self.returns_pct.get().map_or(0, |r| r.capacity() * 8);
        let own = self.closes.capacity() * 8
            + prices(&self.close_prices)
            + prices(&self.open_prices)
            + returns;
        let axis = (Arc::as_ptr(&self.axis) as usize, self.axis.capacity() * 4);
        (own, axis)
    }

    pub fn last_date(&self) -> Option<NaiveDate> {
        self.dates().last().copied()
    }
}

/// Puts series whose dates are a run of another's on that one's axis, longest series
/// first (an axis is then as long as it can be): a universe's dates held once.
pub fn share_axes<'a>(series: impl IntoIterator<Item = &'a mut BarSeries>) {
    let mut all: Vec<&mut BarSeries> = series.into_iter().collect();
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut axes: Vec<DateAxis> = Vec::new();
    for s in all {
        if !axes.iter().any(|axis| s.share_axis(axis)) {
            axes.push(s.axis.clone());
        }
    }
}

/// Bars on or before one date, per series: one search per date axis, however many
/// series share it.
#[derive(Debug)]
pub struct CountsUntil {
    date: NaiveDate,
    /// Dates on or before `date`, by axis (its address).
    axes: HashMap<usize, usize>,
    /// The last axis asked for: series mostly share one.
    last: Option<(usize, usize)>,
}

impl CountsUntil {
    pub fn new(date: NaiveDate) -> Self {
        Self {
            date,
            axes: HashMap::new(),
            last: None,
        }
    }

    pub fn count(&mut self, series: &BarSeries) -> usize {
        let key = Arc::as_ptr(&series.axis) as usize;
        let on_axis = match self.last {
            Some((k, on_axis)) if k == key => on_axis,
            _ => {
                let date = self.date;
                let on_axis = *self
                    .axes
                    .entry(key)
                    .or_insert_with(|| series.axis.partition_point(|d| *d <= date));
                self.last = Some((key, on_axis));
                on_axis
            }
        };
        series.count_from_axis(on_axis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Whatever the decimal (scale kept, sign, the largest mantissas), a column gives
    /// back exactly what was pushed, and one value too wide widens the column.
    #[test]
    fn a_price_column_gives_back_every_decimal_exactly() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut pushed = Vec::new();
        let mut column = PriceColumn::with_capacity(0);
        for i in 0..5_000 {
            let d = match i % 5 {
                0 => Decimal::new(rng.random_range(1..10_000_000), rng.random_range(0..6)),
                1 => Decimal::new(-rng.random_range(1..1_000_000_000_000), 4),
                2 => Decimal::new((1 << 55) - 1, rng.random_range(0..28)),
                3 => Decimal::new(-(1 << 55), 28),
                _ => Decimal::new(120, 2),
            };
            column.push(d);
            pushed.push(d);
        }
        assert!(matches!(column, PriceColumn::Packed(_)));
        let back: Vec<String> = (0..pushed.len())
            .map(|i| column.get(i).unwrap().to_string())
            .collect();
        let want: Vec<String> = pushed.iter().map(Decimal::to_string).collect();
        assert_eq!(back, want);
        let wide = Decimal::from_i128_with_scale(1 << 55, 2);
        column.push(wide);
        pushed.push(wide);
        assert!(matches!(column, PriceColumn::Wide(_)));
        let back: Vec<String> = (0..pushed.len())
            .map(|i| column.get(i).unwrap().to_string())
            .collect();
        let want: Vec<String> = pushed.iter().map(Decimal::to_string).collect();
        assert_eq!(back, want);
    }

    /// A series made from columns holds what the same bars pushed one by one hold.
    #[test]
    fn a_series_from_columns_equals_the_one_pushed_bar_by_bar() {
        let day = |i: u64| NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Days::new(i);
        let opens = [10_000_i64, 10_150, 1 << 56, 9_990];
        let closes = [10_100_i64, 10_050, 10_200, 9_000];
        let bars: Vec<DailyBar> = (0..4)
            .map(|i| DailyBar {
                date: day(i as u64),
                open: Decimal::new(opens[i], 3),
                high: Decimal::new(opens[i].max(closes[i]), 3),
                low: Decimal::new(opens[i].min(closes[i]), 3),
                close: Decimal::new(closes[i], 3),
                volume: 1,
            })
            .collect();
        let pushed = BarSeries::new("X".into(), bars);
        let dates = (0..4).map(day).collect();
        let made = BarSeries::from_scaled("X".into(), dates, &opens, &closes, 3);
        assert_eq!(made.dates(), pushed.dates());
        assert_eq!(made.closes(), pushed.closes());
        for i in 0..4 {
            assert_eq!(made.open(i), pushed.open(i));
            assert_eq!(made.close(i), pushed.close(i));
        }
        assert!(matches!(made.open_prices, PriceColumn::Wide(_)));
    }

    /// A price's canonical bytes are its normalised value's, packed or wide.
    #[test]
    fn canonical_bytes_are_those_of_the_normalised_value() {
        let mut rng = StdRng::seed_from_u64(4);
        let values: Vec<Decimal> = (0..3_000)
            .map(|i| match i % 3 {
                0 => Decimal::new(
                    rng.random_range(0..10_000_000) * 100,
                    rng.random_range(0..8),
                ),
                1 => Decimal::new(-rng.random_range(1..1_000_000), rng.random_range(0..8)),
                _ => Decimal::new(rng.random_range(1..100), rng.random_range(0..3)),
            })
            .collect();
        let mut packed = PriceColumn::with_capacity(0);
        let mut wide = PriceColumn::Wide(Vec::new());
        for v in &values {
            packed.push(*v);
            wide.push(*v);
        }
        assert!(matches!(packed, PriceColumn::Packed(_)));
        for (i, v) in values.iter().enumerate() {
            let n = v.normalize();
            let mut want = vec![n.scale() as u8];
            want.extend_from_slice(&i64::try_from(n.mantissa()).unwrap().to_le_bytes());
            for column in [&packed, &wide] {
                let mut got = Vec::new();
                column.put_canonical(i, &mut got);
                assert_eq!(got, want, "{v}");
            }
        }
    }
}
