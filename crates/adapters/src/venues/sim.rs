//! The simulated venue: cash, positions and orders in memory, filled by one of two
//! models.
//!
//! - **Daily** (backtests): an order fills in full at the current day's close, buys at
//!   close × (1 + slippage), sells at close × (1 − slippage), rounded to $0.0001
//!   (midpoint away from zero).
//! - **Intraday** (replays, after [`SimVenue::set_intraday`]): prices are the mid of the
//!   latest minute quote before "now"; a market order fills at the close of the ask
//!   (buys) or bid (sells) of the first quote minute starting after "now"; a limit order
//!   fills at its limit in the first later minute whose opposite side crosses it, and
//!   stays open otherwise.
//!
//! Commission = per order + notional × bps, rounded to the cent. Cash moves by notional
//! ± commission; a buy the cash cannot pay for, or a sell of more than is held, is
//! rejected.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use chrono::NaiveTime;

use crate::data::intraday::MinuteQuote;
use crate::domain::Quote;
use crate::domain::{OrderType, Side, Symbol};
use crate::events::OrderIntent;
use crate::market::{DayCloses, DayOpens, MarketData};
use crate::venue::{AccountSnapshot, Venue, VenueError, VenueFuture, VenueOrder, VenueOrderStatus};

pub use alchemiser_core::costs::{RegulatoryFees, SimCosts};

#[derive(Debug, Default)]
struct SimState {
    account: AccountSnapshot,
    marks: BTreeMap<Symbol, Decimal>,
    date: Option<NaiveDate>,
    /// The closes as of `date`: looked up by every plan and order, so found once a day.
    closes: DayCloses,
    /// Set when orders fill at a later session's open (`backtest.fill = "next_open"`):
    /// prices and plans still read `closes`, fills read these.
    fill_opens: Option<DayOpens>,
    intraday: Option<Intraday>,
    /// Every order by client id. Hashed: a 23-year backtest holds thousands, and every
    /// submission and lookup searched a sorted map of them; listings sort by id.
    orders: HashMap<String, VenueOrder>,
    /// Client ids of the orders still open: listing them must not walk every order of a
    /// long backtest.
    open: std::collections::BTreeSet<String>,
    next_order: u64,
    /// The last day an order filled: a saved account's time only runs forward.
    last_traded: Option<NaiveDate>,
}

/// The orders in client id order (listings and the saved account stay deterministic).
fn by_client_id(orders: &HashMap<String, VenueOrder>) -> Vec<VenueOrder> {
    let mut all: Vec<VenueOrder> = orders.values().cloned().collect();
    all.sort_by(|a, b| a.client_order_id.cmp(&b.client_order_id));
    all
}

/// Minute quotes of the replayed day and the replay's "now".
#[derive(Debug)]
struct Intraday {
    quotes: BTreeMap<Symbol, Vec<MinuteQuote>>,
    now: NaiveTime,
}

/// What a simulated account keeps between runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct PersistedAccount {
    account: AccountSnapshot,
    orders: Vec<VenueOrder>,
    /// Absent in accounts saved before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_traded: Option<NaiveDate>,
}

impl PersistedAccount {
    /// What a saved account must hold to be traded from, like a config's rules: each
    /// violation names its field.
    fn validate(&self) -> Result<(), String> {
        let mut broken = Vec::new();
        if self.account.cash < Decimal::ZERO {
            broken.push(format!(
                "account.cash is {}: a cash account is never negative",
                self.account.cash
            ));
        }
        for (symbol, qty) in &self.account.positions {
            if let Err(why) = crate::domain::parse_symbol(symbol) {
                broken.push(format!("account.positions: {why}"));
            } else if *qty <= Decimal::ZERO {
                broken.push(format!(
                    "account.positions.{symbol} is {qty}: a held quantity must be positive"
                ));
            }
        }
        for (i, o) in self.orders.iter().enumerate() {
            let at = format!("orders[{i}] ({})", o.client_order_id);
            if let Err(why) = crate::domain::parse_symbol(&o.symbol) {
                broken.push(format!("{at}.symbol: {why}"));
            }
            if o.qty <= Decimal::ZERO {
                broken.push(format!("{at}.qty is {}: must be positive", o.qty));
            }
            if o.filled_qty < Decimal::ZERO || o.filled_qty > o.qty {
                broken.push(format!(
                    "{at}.filled_qty is {}: must be between 0 and qty {}",
                    o.filled_qty, o.qty
                ));
            }
            if o.commission < Decimal::ZERO {
                broken.push(format!(
                    "{at}.commission is {}: must not be negative",
                    o.commission
                ));
            }
            if o.avg_fill_price.is_some_and(|p| p <= Decimal::ZERO) {
                broken.push(format!("{at}.avg_fill_price must be positive"));
            }
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken.join("; "))
        }
    }
}

/// How an order meets the market.
enum Fill {
    At(Decimal),
    StaysOpen,
}

#[derive(Debug, Default)]
pub struct SimVenue {
    state: Mutex<SimState>,
    costs: SimCosts,
    market: Option<Arc<MarketData>>,
}

impl SimVenue {
    pub fn with_cash(cash: Decimal) -> Self {
        Self::new(cash, SimCosts::default(), None)
    }

    /// A venue that prices from `market`'s closes on the date set by [`SimVenue::set_date`].
    pub fn new(cash: Decimal, costs: SimCosts, market: Option<Arc<MarketData>>) -> Self {
        Self {
            state: Mutex::new(SimState {
                account: AccountSnapshot {
                    cash,
                    positions: BTreeMap::new(),
                },
                ..SimState::default()
            }),
            costs,
            market,
        }
    }

    /// Replaces the market the venue prices from (before it is shared): a restored
    /// account may hold symbols the strategies no longer reference.
    pub fn set_market(&mut self, market: Arc<MarketData>) {
        self.market = Some(market);
        let date = self.lock().date;
        if let Some(date) = date {
            self.set_date(date);
        }
    }

    /// Sets the price the venue reports for `symbol` (overrides market data).
    pub fn set_mark(&self, symbol: &str, price: Decimal) {
        self.lock().marks.insert(symbol.into(), price);
    }

    /// Moves the venue to `date`: prices are that day's closes from then on.
    pub fn set_date(&self, date: NaiveDate) {
        let mut s = self.lock();
        s.date = Some(date);
        if let Some(market) = &self.market {
            s.closes.move_to(market, date);
        }
        s.marks.clear();
        s.intraday = None;
        s.fill_opens = None;
    }

    /// Market orders placed from now until the next [`SimVenue::set_date`] fill at
    /// `date`'s open (the next session's), not at the current close; a limit order
    /// fills when that open crosses its limit.
    pub fn fill_at_open_of(&self, date: NaiveDate) {
        let opens = self
            .market
            .as_ref()
            .map(|m| DayOpens::on(m, date))
            .unwrap_or_default();
        self.lock().fill_opens = Some(opens);
    }

    /// Switches to the intraday model for the current day: `quotes` by symbol, in
    /// minute order, and the time orders are submitted at.
    pub fn set_intraday(&self, quotes: BTreeMap<Symbol, Vec<MinuteQuote>>, now: NaiveTime) {
        self.lock().intraday = Some(Intraday { quotes, now });
    }

    pub fn costs(&self) -> &SimCosts {
        &self.costs
    }

    /// Changes a position behind the engine's back (reconciliation tests and drills).
    /// Every order the venue ever accepted, by client order id.
    pub fn orders(&self) -> Vec<VenueOrder> {
        by_client_id(&self.lock().orders)
    }

    pub fn adjust_position(&self, symbol: &str, qty: Decimal) {
        let mut s = self.lock();
        let q = s.account.positions.entry(symbol.into()).or_default();
        *q += qty;
        if q.is_zero() {
            s.account.positions.remove(symbol);
        }
    }

    /// Writes the account and its orders to `path` (JSON), so that the next run of the
    /// engine continues from them.
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        let state = {
            let s = self.lock();
            PersistedAccount {
                account: s.account.clone(),
                orders: by_client_id(&s.orders),
                last_traded: s.last_traded,
            }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(&state).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    /// The last day one of the account's orders filled.
    pub fn last_traded(&self) -> Option<NaiveDate> {
        self.lock().last_traded
    }

    /// Restores what [`SimVenue::save`] wrote, refusing an account no venue could hold
    /// (negative cash, a non-positive position); a missing file leaves the venue as it is.
    pub fn restore(&self, path: &std::path::Path) -> Result<bool, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let text = crate::readable::without_bom(&text);
        let saved: PersistedAccount =
            serde_json::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
        saved
            .validate()
            .map_err(|why| format!("{}: {why}", path.display()))?;
        let mut s = self.lock();
        s.last_traded = saved.last_traded;
        s.next_order = saved.orders.len() as u64;
        s.orders = saved
            .orders
            .into_iter()
            .map(|o| (o.client_order_id.clone(), o))
            .collect();
        s.open = s
            .orders
            .values()
            .filter(|o| o.status.is_open())
            .map(|o| o.client_order_id.clone())
            .collect();
        s.account = saved.account;
        Ok(true)
    }

    pub fn snapshot(&self) -> AccountSnapshot {
        self.lock().account.clone()
    }

    /// End-of-day `(cash, equity)` on `date`: cash plus every position at its last
    /// close on or before `date` in `marks` (zero without one). A backtest marks every
    /// day, so the venue's own closes serve when it prices from `marks` on that date,
    /// and the account is not copied out.
    pub fn equity_on(&self, marks: &Arc<MarketData>, date: NaiveDate) -> (Decimal, Decimal) {
        let s = self.lock();
        let own =
            s.date == Some(date) && self.market.as_ref().is_some_and(|m| Arc::ptr_eq(m, marks));
        let mut fresh = DayCloses::default();
        let closes = if own {
            &s.closes
        } else {
            fresh.move_to(marks, date);
            &fresh
        };
        let marked: Decimal = s
            .account
            .positions
            .iter()
            .map(|(symbol, qty)| {
                *qty * closes
                    .on_or_before(symbol)
                    .map_or(Decimal::ZERO, |(_, close)| close)
            })
            .sum();
        (s.account.cash, s.account.cash + marked)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn price_of(&self, state: &SimState, symbol: &str) -> Result<Decimal, VenueError> {
        if let Some(p) = state.marks.get(symbol) {
            return Ok(*p);
        }
        let no_price = || VenueError::NoPrice {
            symbol: symbol.into(),
        };
        if let Some(day) = &state.intraday {
            return day
                .quotes
                .get(symbol)
                .and_then(|q| q.iter().rev().find(|m| m.start < day.now))
                .map(MinuteQuote::mid)
                .ok_or_else(no_price);
        }
        state.closes.on_date(symbol).ok_or_else(no_price)
    }

    /// When the venue's quotes are from: the replay's "now" (New York) on its date, or
    /// the close of the day. Quotes are as fresh as the simulation.
    fn quote_time(&self, state: &SimState) -> chrono::DateTime<chrono::Utc> {
        use chrono::TimeZone;
        let date = state.date.unwrap_or_default();
        let time = state
            .intraday
            .as_ref()
            .map_or(NaiveTime::from_hms_opt(16, 0, 0).unwrap_or_default(), |d| {
                d.now
            });
        chrono_tz::America::New_York
            .from_local_datetime(&date.and_time(time))
            .earliest()
            .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc))
    }

    /// Where `intent` fills under the current model.
    fn fill_of(&self, state: &SimState, intent: &OrderIntent) -> Result<Fill, String> {
        let Some(day) = &state.intraday else {
            let reference = match &state.fill_opens {
                Some(opens) => opens.of(&intent.symbol).ok_or_else(|| {
                    format!(
                        "no {} bar on {} to fill at its open",
                        intent.symbol,
                        opens.date().map_or_else(String::new, |d| d.to_string())
                    )
                })?,
                None => self
                    .price_of(state, &intent.symbol)
                    .map_err(|e| e.to_string())?,
            };
            return Ok(match (intent.order_type, intent.limit_price) {
                (OrderType::Limit, Some(limit)) => {
                    let crosses = match intent.side {
                        Side::Buy => reference <= limit,
                        Side::Sell => reference >= limit,
                    };
                    if crosses {
                        Fill::At(limit)
                    } else {
                        Fill::StaysOpen
                    }
                }
                _ => Fill::At(self.costs.fill_price(intent.side, reference)),
            });
        };
        let later: Vec<&MinuteQuote> = day
            .quotes
            .get(&intent.symbol)
            .map(|q| q.iter().filter(|m| m.start > day.now).collect())
            .unwrap_or_default();
        match (intent.order_type, intent.limit_price) {
            (OrderType::Limit, Some(limit)) => Ok(later
                .iter()
                .find(|m| match intent.side {
                    Side::Buy => m.ask_low <= limit,
                    Side::Sell => m.bid_high >= limit,
                })
                .map_or(Fill::StaysOpen, |_| Fill::At(limit))),
            _ => later
                .first()
                .map(|m| {
                    Fill::At(if intent.side == Side::Buy {
                        m.ask_close
                    } else {
                        m.bid_close
                    })
                })
                .ok_or_else(|| {
                    format!(
                        "no {} quote after {} to fill against",
                        intent.symbol, day.now
                    )
                }),
        }
    }

    fn execute(&self, intent: &OrderIntent) -> Result<VenueOrder, VenueError> {
        let mut s = self.lock();
        if let Some(existing) = s.orders.get(&intent.client_order_id) {
            return Ok(existing.clone());
        }
        s.next_order += 1;
        let mut order = VenueOrder {
            client_order_id: intent.client_order_id.clone(),
            venue_order_id: format!("sim-{}", s.next_order),
            symbol: intent.symbol.clone(),
            side: intent.side,
            qty: intent.qty,
            status: VenueOrderStatus::Rejected,
            filled_qty: Decimal::ZERO,
            avg_fill_price: None,
            commission: Decimal::ZERO,
            reject_reason: None,
        };
        let reject = |order: &mut VenueOrder, why: String| {
            order.reject_reason = Some(why);
        };
        match self.fill_of(&s, intent) {
            Err(why) => reject(&mut order, why),
            Ok(_) if intent.qty <= Decimal::ZERO => reject(
                &mut order,
                format!("quantity {} must be positive", intent.qty),
            ),
            Ok(Fill::StaysOpen) => order.status = VenueOrderStatus::Accepted,
            Ok(Fill::At(price)) => {
                let notional = intent.qty * price;
                let commission = self.costs.commission(intent.side, intent.qty, notional);
                let held = s
                    .account
                    .positions
                    .get(&intent.symbol)
                    .copied()
                    .unwrap_or_default();
                match intent.side {
                    Side::Buy if notional + commission > s.account.cash => reject(
                        &mut order,
                        format!(
                            "insufficient buying power: needs {}, cash {}",
                            notional + commission,
                            s.account.cash
                        ),
                    ),
                    Side::Sell if intent.qty > held => reject(
                        &mut order,
                        format!(
                            "insufficient position: selling {} of {} held",
                            intent.qty, held
                        ),
                    ),
                    side => {
                        let (cash_delta, qty_delta) = match side {
                            Side::Buy => (-(notional + commission), intent.qty),
                            Side::Sell => (notional - commission, -intent.qty),
                        };
                        s.account.cash += cash_delta;
                        let q = s
                            .account
                            .positions
                            .entry(intent.symbol.clone())
                            .or_default();
                        *q += qty_delta;
                        if q.is_zero() {
                            s.account.positions.remove(&intent.symbol);
                        }
                        order.status = VenueOrderStatus::Filled;
                        order.filled_qty = intent.qty;
                        order.avg_fill_price = Some(price);
                        order.commission = commission;
                        s.last_traded = s.last_traded.max(s.date);
                    }
                }
            }
        }
        if order.status.is_open() {
            s.open.insert(order.client_order_id.clone());
        }
        s.orders
            .insert(order.client_order_id.clone(), order.clone());
        Ok(order)
    }
}

impl Venue for SimVenue {
    fn account(&self) -> VenueFuture<'_, AccountSnapshot> {
        let snapshot = self.lock().account.clone();
        Box::pin(async move { Ok(snapshot) })
    }

    fn prices(&self, symbols: &[Symbol]) -> VenueFuture<'_, BTreeMap<Symbol, Decimal>> {
        let state = self.lock();
        let result = symbols
            .iter()
            .map(|s| self.price_of(&state, s).map(|p| (s.clone(), p)))
            .collect::<Result<BTreeMap<_, _>, _>>();
        Box::pin(async move { result })
    }

    fn submit(&self, intent: &OrderIntent) -> VenueFuture<'_, VenueOrder> {
        let result = self.execute(intent);
        Box::pin(async move { result })
    }

    fn order_by_client_id(&self, client_order_id: &str) -> VenueFuture<'_, Option<VenueOrder>> {
        let found = self.lock().orders.get(client_order_id).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn open_orders(&self) -> VenueFuture<'_, Vec<VenueOrder>> {
        let s = self.lock();
        let open = s
            .open
            .iter()
            .filter_map(|id| s.orders.get(id))
            .filter(|o| o.status.is_open())
            .cloned()
            .collect();
        Box::pin(async move { Ok(open) })
    }

    fn is_fractionable(&self, _symbol: &str) -> VenueFuture<'_, bool> {
        Box::pin(async { Ok(true) })
    }

    /// The simulated venue fills (or rests) an order when it is placed.
    fn settle(&self, order: VenueOrder) -> VenueFuture<'_, VenueOrder> {
        Box::pin(async move { Ok(order) })
    }

    fn quote(&self, symbol: &str) -> VenueFuture<'_, Quote> {
        let state = self.lock();
        let quote = match &state.intraday {
            Some(day) => day
                .quotes
                .get(symbol)
                .and_then(|q| q.iter().rev().find(|m| m.start < day.now))
                .map(|m| Quote {
                    bid: m.bid_close,
                    ask: m.ask_close,
                    at: self.quote_time(&state),
                })
                .ok_or_else(|| VenueError::NoPrice {
                    symbol: symbol.into(),
                }),
            None => self.price_of(&state, symbol).map(|p| Quote {
                bid: p,
                ask: p,
                at: self.quote_time(&state),
            }),
        };
        Box::pin(async move { quote })
    }

    fn cancel(&self, client_order_id: &str) -> VenueFuture<'_, VenueOrder> {
        let mut s = self.lock();
        let result = match s.orders.get_mut(client_order_id) {
            None => Err(VenueError::NotFound(client_order_id.to_string())),
            Some(o) => {
                if o.status.is_open() {
                    o.status = VenueOrderStatus::Canceled;
                }
                Ok(o.clone())
            }
        };
        s.open.remove(client_order_id);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderType;
    use rust_decimal_macros::dec;

    fn intent(id: &str, side: Side, qty: Decimal) -> OrderIntent {
        OrderIntent {
            client_order_id: id.into(),
            symbol: "SPY".into(),
            side,
            qty,
            order_type: OrderType::Market,
            limit_price: None,
        }
    }

    fn block<T>(f: VenueFuture<'_, T>) -> Result<T, VenueError> {
        futures_util::FutureExt::now_or_never(f).expect("sim venue answers at once")
    }

    fn closes(symbol: &str, days: &[(u32, Decimal)]) -> (Symbol, Arc<crate::market::BarSeries>) {
        let bars = days
            .iter()
            .map(|(day, close)| {
                crate::market::DailyBar::flat(
                    NaiveDate::from_ymd_opt(2024, 1, *day).unwrap(),
                    *close,
                )
            })
            .collect();
        (
            symbol.into(),
            Arc::new(crate::market::BarSeries::new(symbol.into(), bars)),
        )
    }

    #[test]
    fn equity_marks_positions_at_the_last_close_on_or_before_the_day() {
        let market = Arc::new(MarketData {
            series: [
                closes("SPY", &[(2, dec!(100)), (3, dec!(101))]),
                closes("IWM", &[(2, dec!(50))]),
            ]
            .into_iter()
            .collect(),
        });
        let v = SimVenue::new(dec!(1000), SimCosts::default(), Some(market.clone()));
        let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
        v.set_date(day(2));
        block(v.submit(&intent("a", Side::Buy, dec!(2)))).unwrap();
        let mut iwm = intent("b", Side::Buy, dec!(4));
        iwm.symbol = "IWM".into();
        block(v.submit(&iwm)).unwrap();
        v.set_date(day(3));
        let cash = v.snapshot().cash;
        // SPY closes at 101 on the 3rd; IWM has no bar that day: its last close counts.
        let expected = cash + dec!(2) * dec!(101) + dec!(4) * dec!(50);
        // The venue's own closes, and closes found afresh (another day, another market).
        assert_eq!(v.equity_on(&market, day(3)), (cash, expected));
        let copy = Arc::new(MarketData {
            series: market.series.clone(),
        });
        assert_eq!(v.equity_on(&copy, day(3)), (cash, expected));
        let on_the_2nd = cash + dec!(2) * dec!(100) + dec!(4) * dec!(50);
        assert_eq!(v.equity_on(&market, day(2)), (cash, on_the_2nd));
    }

    #[test]
    fn daily_fill_applies_slippage_commission_and_moves_cash() {
        let costs = SimCosts {
            slippage_bps: dec!(5),
            commission_per_order: dec!(1),
            commission_bps: dec!(10),
            regulatory: None,
        };
        let v = SimVenue::new(dec!(10000), costs, None);
        v.set_mark("SPY", dec!(400.00));
        let o = block(v.submit(&intent("a", Side::Buy, dec!(10)))).unwrap();
        assert_eq!(o.status, VenueOrderStatus::Filled);
        assert_eq!(o.avg_fill_price, Some(dec!(400.2)));
        // notional 4002, commission 1 + 4.002 = 5.002 → 5.00
        assert_eq!(o.commission, dec!(5.00));
        assert_eq!(v.snapshot().cash, dec!(10000) - dec!(4002) - dec!(5.00));
        let s = block(v.submit(&intent("b", Side::Sell, dec!(4)))).unwrap();
        assert_eq!(s.avg_fill_price, Some(dec!(399.8)));
        assert_eq!(v.snapshot().positions["SPY"], dec!(6));
    }

    #[test]
    fn the_same_client_order_id_never_fills_twice() {
        let v = SimVenue::with_cash(dec!(10000));
        v.set_mark("SPY", dec!(100));
        let a = block(v.submit(&intent("same", Side::Buy, dec!(1)))).unwrap();
        let b = block(v.submit(&intent("same", Side::Buy, dec!(1)))).unwrap();
        assert_eq!(a, b);
        assert_eq!(v.snapshot().positions["SPY"], dec!(1));
    }

    #[test]
    fn overspending_and_overselling_are_rejected() {
        let v = SimVenue::with_cash(dec!(100));
        v.set_mark("SPY", dec!(100));
        let o = block(v.submit(&intent("a", Side::Buy, dec!(1)))).unwrap();
        assert_eq!(o.status, VenueOrderStatus::Rejected);
        assert!(o
            .reject_reason
            .unwrap()
            .contains("insufficient buying power"));
        let o = block(v.submit(&intent("b", Side::Sell, dec!(1)))).unwrap();
        assert!(o.reject_reason.unwrap().contains("insufficient position"));
        assert_eq!(v.snapshot().cash, dec!(100));
    }

    fn quote(h: u32, m: u32, bid: Decimal, ask: Decimal) -> MinuteQuote {
        MinuteQuote {
            start: NaiveTime::from_hms_opt(h, m, 0).unwrap(),
            bid_low: bid - dec!(0.05),
            bid_high: bid + dec!(0.05),
            bid_close: bid,
            ask_low: ask - dec!(0.05),
            ask_high: ask + dec!(0.05),
            ask_close: ask,
        }
    }

    #[test]
    fn intraday_fills_at_the_next_minute_quote() {
        let v = SimVenue::with_cash(dec!(10000));
        let quotes = vec![
            quote(15, 44, dec!(99.98), dec!(100.02)),
            quote(15, 45, dec!(99.90), dec!(100.10)),
            quote(15, 46, dec!(99.70), dec!(99.80)),
        ];
        v.set_intraday(
            BTreeMap::from([(Symbol::from("SPY"), quotes)]),
            NaiveTime::from_hms_opt(15, 45, 0).unwrap(),
        );
        // Planning price: the mid of the latest minute before now (15:44).
        let prices = block(v.prices(&[Symbol::from("SPY")])).unwrap();
        assert_eq!(prices["SPY"], dec!(100.00));
        // Market buy: ask close of the first minute strictly after 15:45 (15:46).
        let o = block(v.submit(&intent("m", Side::Buy, dec!(10)))).unwrap();
        assert_eq!(o.avg_fill_price, Some(dec!(99.80)));
        // Limit sell at 99.76: the 15:46 bid high (99.75) does not reach it → stays open.
        let mut lim = intent("l", Side::Sell, dec!(5));
        lim.order_type = OrderType::Limit;
        lim.limit_price = Some(dec!(99.76));
        let o = block(v.submit(&lim)).unwrap();
        assert_eq!(o.status, VenueOrderStatus::Accepted);
        assert_eq!(block(v.open_orders()).unwrap().len(), 1);
        // At 99.75 it crosses and fills at the limit.
        lim.client_order_id = "l2".into();
        lim.limit_price = Some(dec!(99.75));
        let o = block(v.submit(&lim)).unwrap();
        assert_eq!(
            (o.status, o.avg_fill_price),
            (VenueOrderStatus::Filled, Some(dec!(99.75)))
        );
    }

    #[test]
    fn the_account_survives_a_save_and_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/sim.json");
        let v = SimVenue::with_cash(dec!(1000));
        v.set_mark("SPY", dec!(100));
        block(v.submit(&intent("a", Side::Buy, dec!(2)))).unwrap();
        v.save(&path).unwrap();
        let w = SimVenue::with_cash(dec!(5));
        assert!(w.restore(&path).unwrap());
        assert_eq!(w.snapshot(), v.snapshot());
        // The restored venue still knows the order: resubmitting it changes nothing.
        w.set_mark("SPY", dec!(100));
        block(w.submit(&intent("a", Side::Buy, dec!(2)))).unwrap();
        assert_eq!(w.snapshot().positions["SPY"], dec!(2));
        assert!(!SimVenue::default()
            .restore(&dir.path().join("absent.json"))
            .unwrap());
    }

    #[test]
    fn rounding_is_midpoint_away_from_zero() {
        let c = SimCosts {
            slippage_bps: dec!(5),
            ..SimCosts::default()
        };
        // 10.01 × 1.0005 = 10.015005 → 10.0150; 0.00005 midpoint cases round away
        assert_eq!(c.fill_price(Side::Buy, dec!(10.01)), dec!(10.0150));
        assert_eq!(c.fill_price(Side::Buy, dec!(0.0999)), dec!(0.0999));
        let c = SimCosts {
            slippage_bps: dec!(0),
            commission_per_order: dec!(0),
            commission_bps: dec!(50),
            regulatory: None,
        };
        // 1.00 × 0.005 = 0.005 → 0.01
        assert_eq!(c.commission(Side::Buy, dec!(1), dec!(1.00)), dec!(0.01));
    }

    /// Alpaca's fees, worked by hand: sells pay SEC on the proceeds, TAF per share up
    /// to its cap, CAT per share; buys pay CAT only; each rounded up to the cent.
    #[test]
    fn regulatory_fees_are_alpacas_on_sells_and_cat_on_both_sides() {
        let fees = RegulatoryFees::alpaca();
        // 100 shares sold for $10,000: SEC 0.278 → 0.28; TAF 0.0166 → 0.02; CAT 0.0046 → 0.01.
        assert_eq!(fees.on(Side::Sell, dec!(100), dec!(10000)), dec!(0.31));
        // Bought: CAT only.
        assert_eq!(fees.on(Side::Buy, dec!(100), dec!(10000)), dec!(0.01));
        // 100,000 shares sold for $2,000,000: SEC 55.60; TAF 16.60 capped at 8.30; CAT 4.60.
        assert_eq!(
            fees.on(Side::Sell, dec!(100000), dec!(2000000)),
            dec!(68.50)
        );
        // A fraction of a share sold for $5: every fee is still a cent.
        assert_eq!(fees.on(Side::Sell, dec!(0.05), dec!(5)), dec!(0.03));
        let c = SimCosts {
            regulatory: Some(fees),
            ..SimCosts::default()
        };
        assert_eq!(c.commission(Side::Sell, dec!(100), dec!(10000)), dec!(0.31));
        let v = SimVenue::new(dec!(100000), c, None);
        v.set_mark("SPY", dec!(100));
        block(v.submit(&intent("b", Side::Buy, dec!(100)))).unwrap();
        block(v.submit(&intent("s", Side::Sell, dec!(100)))).unwrap();
        // 100 at 100.05 (+0.01 CAT), then 100 at 99.95 (−0.31): 100,000 − 10,005.01 + 9,994.69.
        assert_eq!(v.snapshot().cash, dec!(99989.68));
    }
}
