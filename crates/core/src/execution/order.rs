//! One order's life as an explicit `(status, event)` transition table (after
//! NautilusTrader's `OrderStatus::transition`): new → submitted → partially filled →
//! filled, or canceled or rejected. A venue reports an order as snapshots (status and
//! cumulative filled quantity); [`Order::observe`] turns each snapshot into the events
//! it implies, and every event goes through [`Order::apply`], which refuses what cannot
//! happen instead of overwriting the state. Fills are deduplicated by fill id, so the
//! same snapshot seen twice (a redelivered plan adopting its orders) counts once.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use thiserror::Error;

use crate::venue::{VenueOrder, VenueOrderStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    New,
    Submitted,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
}

crate::display_as_wire_name!(OrderStatus);

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled | OrderStatus::Canceled | OrderStatus::Rejected
        )
    }
}

/// What happens to an order.
#[derive(Clone, Debug, PartialEq)]
pub enum OrderEvent {
    /// The venue accepted it.
    Accepted,
    /// Some quantity filled; `fill_id` is unique per fill at the venue.
    Fill { fill_id: String, qty: Decimal },
    /// The venue confirmed a cancel.
    Canceled,
    /// The venue refused it.
    Rejected,
}

impl std::fmt::Display for OrderEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderEvent::Accepted => f.write_str("accepted"),
            OrderEvent::Fill { fill_id, qty } => write!(f, "fill {fill_id} of {qty}"),
            OrderEvent::Canceled => f.write_str("canceled"),
            OrderEvent::Rejected => f.write_str("rejected"),
        }
    }
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum OrderError {
    #[error("order event `{event}` is not allowed in status {from}")]
    Transition {
        from: OrderStatus,
        event: OrderEvent,
    },
    #[error("fills of {filled} exceed the order's quantity {qty}")]
    Overfilled { qty: Decimal, filled: Decimal },
}

/// What applying an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Moved {
        from: OrderStatus,
        to: OrderStatus,
    },
    /// A fill already counted (same fill id): nothing changed.
    DuplicateFill,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Order {
    pub qty: Decimal,
    pub status: OrderStatus,
    pub filled: Decimal,
    fills: BTreeSet<String>,
    /// Value and commission of the fills observed so far (for the price of the next).
    value: Decimal,
    commission: Decimal,
}

/// A fill a snapshot showed for the first time: what was added since the last one.
#[derive(Clone, Debug, PartialEq)]
pub struct NewFill {
    pub fill_id: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub commission: Decimal,
}

impl Order {
    pub fn new(qty: Decimal) -> Self {
        Self {
            qty,
            status: OrderStatus::New,
            filled: Decimal::ZERO,
            fills: BTreeSet::new(),
            value: Decimal::ZERO,
            commission: Decimal::ZERO,
        }
    }

    /// The next status after `event`, one arm per legal edge.
    pub fn apply(&mut self, event: OrderEvent) -> Result<Applied, OrderError> {
        use OrderEvent as E;
        use OrderStatus as S;
        let from = self.status;
        if let E::Fill { fill_id, .. } = &event {
            if self.fills.contains(fill_id) {
                return Ok(Applied::DuplicateFill);
            }
        }
        let to = match (from, &event) {
            (S::New, E::Accepted) => S::Submitted,
            (S::New | S::Submitted, E::Rejected) => S::Rejected,
            (S::Submitted | S::PartiallyFilled, E::Fill { qty, .. }) => {
                if self.filled + qty >= self.qty {
                    S::Filled
                } else {
                    S::PartiallyFilled
                }
            }
            (S::Submitted | S::PartiallyFilled, E::Canceled) => S::Canceled,
            // A fill the venue made before it processed the cancel, reported after the
            // cancel's confirmation: it counts, and the order stays canceled.
            (S::Canceled, E::Fill { .. }) => S::Canceled,
            // A cancel that raced the last fill: the venue filled the order first.
            (S::Filled, E::Canceled) => S::Filled,
            _ => {
                return Err(OrderError::Transition { from, event });
            }
        };
        if let E::Fill { fill_id, qty } = event {
            let filled = self.filled + qty;
            if filled > self.qty {
                return Err(OrderError::Overfilled {
                    qty: self.qty,
                    filled,
                });
            }
            self.filled = filled;
            self.fills.insert(fill_id);
        }
        self.status = to;
        Ok(Applied::Moved { from, to })
    }

    /// Folds a venue snapshot into the events it implies since the last one: accepted,
    /// then the newly filled quantity as one fill (identified by the venue's order id
    /// and the cumulative quantity, so the same snapshot seen again counts once), then
    /// a cancel or a rejection. Returns the new fill, priced from the snapshot's average
    /// price less what the earlier fills were worth.
    pub fn observe(&mut self, snapshot: &VenueOrder) -> Result<Option<NewFill>, OrderError> {
        if snapshot.status == VenueOrderStatus::Rejected && self.status == OrderStatus::New {
            self.apply(OrderEvent::Rejected)?;
            return Ok(None);
        }
        if self.status == OrderStatus::New {
            self.apply(OrderEvent::Accepted)?;
        }
        let mut new_fill = None;
        if snapshot.filled_qty > self.filled {
            let fill = NewFill {
                fill_id: format!("{}@{}", snapshot.venue_order_id, snapshot.filled_qty),
                qty: snapshot.filled_qty - self.filled,
                price: Decimal::ZERO,
                commission: snapshot.commission - self.commission,
            };
            self.apply(OrderEvent::Fill {
                fill_id: fill.fill_id.clone(),
                qty: fill.qty,
            })?;
            if let Some(avg) = snapshot.avg_fill_price {
                let value = avg * snapshot.filled_qty;
                // The first fill's price is the venue's own figure, not a quotient.
                let price = if self.value.is_zero() {
                    avg
                } else {
                    ((value - self.value) / fill.qty).round_dp(6)
                };
                self.value = value;
                self.commission = snapshot.commission;
                new_fill = Some(NewFill { price, ..fill });
            }
        }
        match snapshot.status {
            VenueOrderStatus::Canceled if self.status != OrderStatus::Canceled => {
                self.apply(OrderEvent::Canceled)?;
            }
            VenueOrderStatus::Rejected if !self.status.is_terminal() => {
                self.apply(OrderEvent::Rejected)?;
            }
            _ => {}
        }
        Ok(new_fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn fill(id: &str, qty: Decimal) -> OrderEvent {
        OrderEvent::Fill {
            fill_id: id.into(),
            qty,
        }
    }

    #[test]
    fn every_legal_edge() {
        use OrderStatus as S;
        let cases: Vec<(Vec<OrderEvent>, S, Decimal)> = vec![
            (vec![OrderEvent::Accepted], S::Submitted, dec!(0)),
            (vec![OrderEvent::Rejected], S::Rejected, dec!(0)),
            (
                vec![OrderEvent::Accepted, OrderEvent::Rejected],
                S::Rejected,
                dec!(0),
            ),
            (
                vec![OrderEvent::Accepted, fill("a", dec!(4))],
                S::PartiallyFilled,
                dec!(4),
            ),
            (
                vec![OrderEvent::Accepted, fill("a", dec!(4)), fill("b", dec!(6))],
                S::Filled,
                dec!(10),
            ),
            (
                vec![
                    OrderEvent::Accepted,
                    fill("a", dec!(4)),
                    OrderEvent::Canceled,
                ],
                S::Canceled,
                dec!(4),
            ),
            // A late fill after the cancel counts; the order stays canceled.
            (
                vec![
                    OrderEvent::Accepted,
                    OrderEvent::Canceled,
                    fill("a", dec!(3)),
                ],
                S::Canceled,
                dec!(3),
            ),
            // A cancel racing the last fill leaves the order filled.
            (
                vec![
                    OrderEvent::Accepted,
                    fill("a", dec!(10)),
                    OrderEvent::Canceled,
                ],
                S::Filled,
                dec!(10),
            ),
            // The same fill twice counts once.
            (
                vec![OrderEvent::Accepted, fill("a", dec!(4)), fill("a", dec!(4))],
                S::PartiallyFilled,
                dec!(4),
            ),
        ];
        for (events, status, filled) in cases {
            let mut o = Order::new(dec!(10));
            for e in &events {
                o.apply(e.clone())
                    .unwrap_or_else(|err| panic!("{events:?}: {err}"));
            }
            assert_eq!((o.status, o.filled), (status, filled), "{events:?}");
        }
    }

    #[test]
    fn impossible_edges_are_refused_and_change_nothing() {
        let mut o = Order::new(dec!(10));
        assert!(
            o.apply(fill("a", dec!(1))).is_err(),
            "a fill before acceptance"
        );
        assert!(
            o.apply(OrderEvent::Canceled).is_err(),
            "a cancel before acceptance"
        );
        o.apply(OrderEvent::Accepted).unwrap();
        assert!(o.apply(OrderEvent::Accepted).is_err());
        assert_eq!(
            o.apply(fill("a", dec!(11))),
            Err(OrderError::Overfilled {
                qty: dec!(10),
                filled: dec!(11)
            })
        );
        assert_eq!((o.status, o.filled), (OrderStatus::Submitted, dec!(0)));
        o.apply(OrderEvent::Rejected).unwrap();
        assert!(o.apply(OrderEvent::Accepted).is_err());
    }

    fn snapshot(status: VenueOrderStatus, filled: Decimal) -> VenueOrder {
        VenueOrder {
            client_order_id: "alc-1".into(),
            venue_order_id: "v-1".into(),
            symbol: "SPY".into(),
            side: crate::domain::Side::Buy,
            qty: dec!(10),
            status,
            filled_qty: filled,
            avg_fill_price: (filled > dec!(0)).then_some(dec!(10)),
            commission: dec!(0),
            reject_reason: None,
        }
    }

    #[test]
    fn snapshots_fold_into_events_once() {
        use VenueOrderStatus as V;
        let mut o = Order::new(dec!(10));
        assert_eq!(o.observe(&snapshot(V::Accepted, dec!(0))).unwrap(), None);
        let first = o.observe(&snapshot(V::PartiallyFilled, dec!(4))).unwrap();
        assert_eq!(
            first.map(|f| (f.fill_id, f.qty, f.price)),
            Some(("v-1@4".to_string(), dec!(4), dec!(10)))
        );
        assert_eq!(
            o.observe(&snapshot(V::PartiallyFilled, dec!(4))).unwrap(),
            None
        );
        assert_eq!(
            (o.status, o.filled),
            (OrderStatus::PartiallyFilled, dec!(4))
        );
        // Canceled with more filled than last seen: the late fill, then the cancel. The
        // average moved from 10 to 10.4 over 6: the 2 added cost (62.4 - 40) / 2 = 11.2.
        let mut canceled = snapshot(V::Canceled, dec!(6));
        canceled.avg_fill_price = Some(dec!(10.4));
        let late = o.observe(&canceled).unwrap().expect("the late fill");
        assert_eq!(
            (late.fill_id.as_str(), late.qty, late.price),
            ("v-1@6", dec!(2), dec!(11.2))
        );
        assert_eq!((o.status, o.filled), (OrderStatus::Canceled, dec!(6)));
        let mut r = Order::new(dec!(10));
        r.observe(&snapshot(V::Rejected, dec!(0))).unwrap();
        assert_eq!(r.status, OrderStatus::Rejected);
    }

    fn any_event() -> impl Strategy<Value = OrderEvent> {
        prop_oneof![
            Just(OrderEvent::Accepted),
            Just(OrderEvent::Canceled),
            Just(OrderEvent::Rejected),
            (0u8..4, 1i64..6).prop_map(|(id, q)| OrderEvent::Fill {
                fill_id: format!("f{id}"),
                qty: Decimal::from(q),
            }),
        ]
    }

    proptest! {
        /// Whatever arrives: no panic, never more filled than ordered, and a terminal
        /// status other than a canceled order's late fills never changes.
        #[test]
        fn random_event_sequences_keep_the_invariants(events in proptest::collection::vec(any_event(), 0..20)) {
            let mut o = Order::new(dec!(10));
            for e in events {
                let before = o.clone();
                let result = o.apply(e.clone());
                prop_assert!(o.filled <= o.qty);
                if result.is_err() {
                    prop_assert_eq!(&o, &before);
                }
                if before.status == OrderStatus::Filled || before.status == OrderStatus::Rejected {
                    prop_assert_eq!(o.status, before.status);
                }
                if before.status == OrderStatus::Canceled {
                    prop_assert_eq!(o.status, OrderStatus::Canceled);
                }
            }
        }
    }
}
