//! What trading costs at the simulated venue: slippage, commission and the regulatory
//! fees a US broker passes on. In the core because the executor sizes buys with them
//! (cash for a buy includes its costs) as the simulator fills them.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::domain::Side;

/// Costs of trading at the simulated venue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimCosts {
    pub slippage_bps: Decimal,
    pub commission_per_order: Decimal,
    pub commission_bps: Decimal,
    /// Regulatory fees passed on to the account, when modelled.
    pub regulatory: Option<RegulatoryFees>,
}

impl Default for SimCosts {
    fn default() -> Self {
        Self {
            slippage_bps: Decimal::from(5),
            commission_per_order: Decimal::ZERO,
            commission_bps: Decimal::ZERO,
            regulatory: None,
        }
    }
}

/// The regulatory fees a US broker passes on (Alpaca's published rates in
/// [`RegulatoryFees::alpaca`]): the SEC transaction fee on sale proceeds, FINRA's
/// trading activity fee per share sold (capped per trade), and the consolidated audit
/// trail fee per share bought or sold. Each is rounded up to the cent on each fill;
/// Alpaca rounds each day's total, so this errs by under a cent per fee and fill, on the
/// side of cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegulatoryFees {
    /// Fraction of a sell's principal.
    pub sec_rate: Decimal,
    pub taf_per_share: Decimal,
    pub taf_max: Decimal,
    pub cat_per_share: Decimal,
}

impl RegulatoryFees {
    /// Alpaca's rates (docs.alpaca.markets/docs/regulatory-fees, as read on 2026-12-05):
    /// SEC $27.80 per million sold, TAF $0.000166 a share sold up to $8.30 a trade, CAT
    /// $0.000046 a share either side. The SEC and FINRA revise theirs: set the rates in
    /// `[venue.sim]` when they change.
    pub fn alpaca() -> Self {
        Self {
            sec_rate: Decimal::new(278, 7),
            taf_per_share: Decimal::new(166, 6),
            taf_max: Decimal::new(830, 2),
            cat_per_share: Decimal::new(46, 6),
        }
    }

    /// The fees on a fill of `qty` shares worth `notional`.
    pub fn on(&self, side: Side, qty: Decimal, notional: Decimal) -> Decimal {
        let cent_up = |d: Decimal| d.round_dp_with_strategy(2, RoundingStrategy::AwayFromZero);
        let cat = cent_up(qty * self.cat_per_share);
        match side {
            Side::Buy => cat,
            Side::Sell => {
                let sec = cent_up(notional * self.sec_rate);
                let taf = cent_up(qty * self.taf_per_share).min(self.taf_max);
                sec + taf + cat
            }
        }
    }
}

const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

impl SimCosts {
    /// The price a market order fills at, given the reference price.
    pub fn fill_price(&self, side: Side, price: Decimal) -> Decimal {
        let slip = self.slippage_bps / BPS;
        let p = match side {
            Side::Buy => price * (Decimal::ONE + slip),
            Side::Sell => price * (Decimal::ONE - slip),
        };
        p.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
    }

    /// What a fill of `qty` worth `notional` costs besides its price: the commission
    /// (per order + bps of the notional, to the cent) and any regulatory fees.
    pub fn commission(&self, side: Side, qty: Decimal, notional: Decimal) -> Decimal {
        let commission = (self.commission_per_order + notional * self.commission_bps / BPS)
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        match &self.regulatory {
            Some(fees) => commission + fees.on(side, qty, notional),
            None => commission,
        }
    }

    /// Cash a buy of `qty` at reference `price` takes, commission included.
    pub fn buy_cost(&self, qty: Decimal, price: Decimal) -> Decimal {
        let notional = qty * self.fill_price(Side::Buy, price);
        notional + self.commission(Side::Buy, qty, notional)
    }
}
