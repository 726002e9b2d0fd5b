//! Event contracts: committed v1 fixtures keep deserialising, evolution is additive,
//! bad input gives clear errors, and content hashes are deterministic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use alchemiser::clock::SystemClock;
use alchemiser::domain::{OrderType, PlanAction, Side, Symbol};
use alchemiser::events::*;
use alchemiser::execution::order_intents;
use alchemiser::strategy::consolidate;
use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_event_type_has_a_v1_fixture_that_round_trips() {
    for kind in EventKind::ALL {
        let path = fixtures_dir()
            .join("v1")
            .join(format!("{}.json", kind.as_str()));
        let env =
            Envelope::from_json(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(env.kind(), *kind, "{}", path.display());
        assert_eq!(env.schema_version, 1);
        let again = Envelope::from_json(&env.to_json().unwrap()).unwrap();
        assert_eq!(again, env, "{} survives a JSON round trip", kind.as_str());
    }
}

#[test]
fn roots_and_children_keep_their_lineage_on_the_wire() {
    let started =
        Envelope::from_json(&read(&fixtures_dir().join("v1/workflow.started.v1.json"))).unwrap();
    assert!(started.is_root());
    let signal = Envelope::from_json(&read(
        &fixtures_dir().join("v1/strategy.signal.generated.v1.json"),
    ))
    .unwrap();
    assert_eq!(
        signal.causation_id,
        Some(EventId::from_str("5d0c4f7e-3f59-4c8e-9c4e-0e5f6f0d7a11").unwrap())
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let env = Envelope::from_json(&read(
        &fixtures_dir().join("evolution/signal_with_unknown_fields.json"),
    ))
    .unwrap();
    let Payload::SignalGenerated(s) = env.payload else {
        panic!("wrong variant")
    };
    assert_eq!(s.target_weights["SPY"], Decimal::ONE);
}

#[test]
fn fields_added_later_are_defaulted() {
    let env = Envelope::from_json(&read(
        &fixtures_dir().join("evolution/order_filled_minimal.json"),
    ))
    .unwrap();
    assert_eq!(
        env.schema_version, 1,
        "absent schema_version is read from the type"
    );
    let Payload::OrderFilled(f) = env.payload else {
        panic!("wrong variant")
    };
    assert_eq!(f.commission, Decimal::ZERO);
    assert_eq!(f.side, Side::Sell);
    assert!(env.triggered_by.is_none());
}

#[test]
fn malformed_json_names_line_and_column() {
    let err = Envelope::from_json("{\n  \"event_id\": \"x\",\n  oops\n}").unwrap_err();
    match &err {
        EnvelopeError::Malformed { line, .. } => assert_eq!(*line, 2),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with("malformed event JSON at line 2"));
}

#[test]
fn unknown_event_type_is_named() {
    let text = read(&fixtures_dir().join("v1/workflow.started.v1.json"))
        .replace("workflow.started.v1", "workflow.exploded.v9");
    assert_eq!(
        Envelope::from_json(&text).unwrap_err(),
        EnvelopeError::UnknownEventType("workflow.exploded.v9".into())
    );
}

#[test]
fn a_bad_payload_names_the_type_and_field() {
    let text = read(&fixtures_dir().join("v1/execution.order.filled.v1.json"))
        .replace("\"fill_id\"", "\"fill\"");
    let err = Envelope::from_json(&text).unwrap_err().to_string();
    assert!(
        err.contains("execution.order.filled.v1") && err.contains("fill_id"),
        "{err}"
    );
    let text = read(&fixtures_dir().join("v1/execution.order.filled.v1.json"))
        .replace("\"500.25\"", "\"five hundred\"");
    assert!(Envelope::from_json(&text).is_err());
}

#[test]
fn payload_hash_ignores_ids_and_times() {
    let clock = SystemClock;
    let p = WorkflowCompleted {
        orders_placed: 2,
        duration_ms: 5,
    };
    let a = Envelope::root(p.clone(), "x", &clock, None);
    let b = Envelope::root(p, "y", &clock, None);
    assert_ne!(a.event_id, b.event_id);
    assert_eq!(a.payload_hash(), b.payload_hash());
}

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, 4).unwrap()
}

fn dec(units: i64, scale: u32) -> Decimal {
    Decimal::new(units, scale)
}

fn symbol() -> impl Strategy<Value = String> {
    "[A-Z]{1,5}"
}

fn weights() -> impl Strategy<Value = Vec<(String, Decimal)>> {
    proptest::collection::btree_map(symbol(), (1i64..1_000_000).prop_map(|u| dec(u, 6)), 1..8)
        .prop_map(|m| m.into_iter().collect())
}

fn signal_hash(pairs: &[(String, Decimal)]) -> String {
    let map: BTreeMap<Symbol, Decimal> =
        pairs.iter().map(|(s, w)| (s.as_str().into(), *w)).collect();
    SignalGenerated::compute_hash(date(), &map, &[])
}

fn plan(items: &[(String, PlanAction, Decimal, Decimal)]) -> RebalancePlanned {
    let items: Vec<PlanItem> = items
        .iter()
        .map(|(s, a, q, p)| PlanItem {
            symbol: s.as_str().into(),
            action: *a,
            qty: *q,
            price: *p,
            target_value: *q * *p,
            current_value: Decimal::ZERO,
            delta: *q * *p,
        })
        .collect();
    let plan_hash = RebalancePlanned::compute_hash("sig", dec(100_000, 0), dec(100_000, 0), &items);
    RebalancePlanned {
        signal_hash: "sig".into(),
        plan_hash,
        account_snapshot_id: "acct".into(),
        portfolio_value: dec(100_000, 0),
        cash: dec(100_000, 0),
        investable: dec(99_000, 0),
        items,
    }
}

fn plan_items() -> impl Strategy<Value = Vec<(String, PlanAction, Decimal, Decimal)>> {
    proptest::collection::btree_map(
        symbol(),
        (
            prop_oneof![Just(PlanAction::Buy), Just(PlanAction::Sell)],
            (1i64..10_000_000).prop_map(|u| dec(u, 4)),
            (1i64..10_000_000).prop_map(|u| dec(u, 4)),
        ),
        1..6,
    )
    .prop_map(|m| m.into_iter().map(|(s, (a, q, p))| (s, a, q, p)).collect())
}

proptest! {
    #[test]
    fn signal_hash_is_independent_of_insertion_order(pairs in weights(), seed in any::<u64>()) {
        let mut shuffled = pairs.clone();
        // A deterministic shuffle driven by the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.rotate_left(i as u32) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        shuffled.reverse();
        prop_assert_eq!(signal_hash(&pairs), signal_hash(&shuffled));
    }

    #[test]
    fn signal_hash_changes_with_any_weight_or_symbol(pairs in weights(), pick in any::<prop::sample::Index>()) {
        let before = signal_hash(&pairs);
        let i = pick.index(pairs.len());
        let mut bumped = pairs.clone();
        bumped[i].1 += dec(1, 6);
        prop_assert_ne!(&before, &signal_hash(&bumped));
        let mut renamed = pairs.clone();
        renamed[i].0.push('X');
        if !pairs.iter().any(|(s, _)| *s == renamed[i].0) {
            prop_assert_ne!(&before, &signal_hash(&renamed));
        }
        let map: BTreeMap<Symbol, Decimal> =
            pairs.iter().map(|(s, w)| (s.as_str().into(), *w)).collect();
        let other_day = SignalGenerated::compute_hash(date().succ_opt().unwrap(), &map, &[]);
        prop_assert_ne!(&before, &other_day);
    }

    #[test]
    fn trailing_zeros_do_not_change_a_hash(pairs in weights()) {
        let padded: Vec<(String, Decimal)> = pairs.iter().map(|(s, w)| {
            let mut w = *w;
            w.rescale(w.scale() + 3);
            (s.clone(), w)
        }).collect();
        prop_assert_eq!(signal_hash(&pairs), signal_hash(&padded));
    }

    #[test]
    fn plan_hash_changes_with_any_trade_relevant_field(items in plan_items(), pick in any::<prop::sample::Index>(), field in 0usize..4) {
        let base = plan(&items).plan_hash;
        let i = pick.index(items.len());
        let mut changed = items.clone();
        match field {
            0 => changed[i].2 += dec(1, 6),
            1 => changed[i].3 += dec(1, 4),
            2 => changed[i].1 = if changed[i].1 == PlanAction::Buy { PlanAction::Sell } else { PlanAction::Buy },
            _ => changed[i].0.push('Z'),
        }
        prop_assert_ne!(base, plan(&changed).plan_hash);
    }

    #[test]
    fn execution_plan_hash_is_stable_across_workflows_and_tracks_orders(items in plan_items(), pick in any::<prop::sample::Index>()) {
        let p = plan(&items);
        let a = order_intents(CorrelationId::new(), &p, 0);
        let b = order_intents(CorrelationId::new(), &p, 0);
        prop_assert_eq!(&a.execution_plan_hash, &b.execution_plan_hash);
        prop_assert_ne!(&a.orders[0].client_order_id, &b.orders[0].client_order_id);
        let i = pick.index(items.len());
        let mut changed = items.clone();
        changed[i].2 += dec(1, 4);
        let c = order_intents(CorrelationId::new(), &plan(&changed), 0);
        prop_assert_ne!(&a.execution_plan_hash, &c.execution_plan_hash);
        let mut limit = a.orders.clone();
        limit[0].order_type = OrderType::Limit;
        limit[0].limit_price = Some(dec(1, 0));
        prop_assert_ne!(&a.execution_plan_hash, &ExecutionStarted::compute_hash(&p.plan_hash, &limit));
    }
}

#[test]
fn intents_put_sells_before_buys() {
    let p = plan(&[
        ("AAA".into(), PlanAction::Buy, dec(1, 0), dec(10, 0)),
        ("ZZZ".into(), PlanAction::Sell, dec(1, 0), dec(10, 0)),
    ]);
    let sides: Vec<Side> = order_intents(CorrelationId::new(), &p, 0)
        .orders
        .iter()
        .map(|o| o.side)
        .collect();
    assert_eq!(sides, [Side::Sell, Side::Buy]);
}

#[test]
fn consolidated_signal_hash_is_reproducible() {
    let alloc = StrategyAllocation {
        name: "core".into(),
        file_weight: Decimal::ONE,
        weights: [
            (Symbol::from("SPY"), dec(6, 1)),
            (Symbol::from("TLT"), dec(4, 1)),
        ]
        .into_iter()
        .collect(),
        indicators: BTreeMap::new(),
        error: None,
        slice: None,
    };
    let a = consolidate(date(), vec![alloc.clone()], "m".into());
    let b = consolidate(date(), vec![alloc], "m".into());
    assert_eq!(a.signal_hash, b.signal_hash);
    assert_eq!(a, b);
}
