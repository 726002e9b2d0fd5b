//! One plain payload of each event type, for tests that need an event of a kind and
//! care little about its contents.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;

/// A payload of `kind` (a plan buys one share of SPY, so it trades).
pub fn sample(kind: EventKind) -> Payload {
    let d = Decimal::ZERO;
    match kind {
        EventKind::WorkflowStarted => Payload::WorkflowStarted(WorkflowStarted {
            as_of: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            mode: Default::default(),
            trigger: Default::default(),
            attempt: 0,
        }),
        EventKind::SignalGenerated => Payload::SignalGenerated(SignalGenerated {
            as_of: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            target_weights: Default::default(),
            strategies: vec![],
            signal_hash: String::new(),
            market_snapshot_id: String::new(),
        }),
        EventKind::AllocationCompared => Payload::AllocationCompared(AllocationCompared {
            signal_hash: String::new(),
            portfolio_value: d,
            rows: vec![],
        }),
        EventKind::RebalancePlanned => Payload::RebalancePlanned(RebalancePlanned {
            signal_hash: String::new(),
            plan_hash: String::new(),
            account_snapshot_id: String::new(),
            portfolio_value: d,
            cash: d,
            investable: d,
            items: vec![PlanItem {
                symbol: "SPY".into(),
                action: crate::domain::PlanAction::Buy,
                qty: Decimal::ONE,
                price: Decimal::ONE,
                target_value: Decimal::ONE,
                current_value: d,
                delta: Decimal::ONE,
            }],
        }),
        EventKind::ExecutionStarted => Payload::ExecutionStarted(ExecutionStarted {
            plan_hash: String::new(),
            execution_plan_hash: String::new(),
            orders: vec![],
            positions_before: Default::default(),
            cash_before: None,
        }),
        EventKind::OrderSubmitted => Payload::OrderSubmitted(OrderSubmitted {
            client_order_id: String::new(),
            venue_order_id: None,
            symbol: "SPY".into(),
            side: crate::domain::Side::Buy,
            qty: d,
            order_type: Default::default(),
            limit_price: None,
        }),
        EventKind::OrderFilled => Payload::OrderFilled(OrderFilled {
            client_order_id: String::new(),
            fill_id: String::new(),
            symbol: "SPY".into(),
            side: crate::domain::Side::Buy,
            qty: d,
            price: d,
            commission: d,
        }),
        EventKind::OrderSettled => Payload::OrderSettled(OrderSettled {
            plan_hash: String::new(),
            execution_plan_hash: String::new(),
            orders: vec![],
            placed: 0,
            succeeded: 0,
            traded_value: d,
            positions_before: None,
        }),
        EventKind::ReconciliationCompleted => {
            Payload::ReconciliationCompleted(ReconciliationCompleted {
                status: ReconciliationStatus::Ok,
                positions: vec![],
                expected_cash: None,
                actual_cash: None,
                unexplained_orders: vec![],
                detail: None,
            })
        }
        EventKind::ReconciliationRequested => {
            Payload::ReconciliationRequested(ReconciliationRequested {
                reason: String::new(),
                expected_positions: None,
                as_of: None,
            })
        }
        EventKind::OrderDenied => Payload::OrderDenied(OrderDenied {
            client_order_id: String::new(),
            symbol: "SPY".into(),
            side: crate::domain::Side::Buy,
            qty: d,
            notional: d,
            code: RiskCode::MaxOrderNotional,
            limit: None,
            detail: String::new(),
        }),
        EventKind::TradingResumed => Payload::TradingResumed(TradingResumed {
            detail: String::new(),
        }),
        EventKind::ActorRestarted => Payload::ActorRestarted(ActorRestarted {
            actor: String::new(),
            error: String::new(),
            failures: 1,
            dead_lettered: false,
        }),
        EventKind::RecoveryAction => Payload::RecoveryAction(RecoveryAction {
            failed_correlation: CorrelationId::new(),
            action: RecoveryKind::Noted,
            attempt: 0,
            detail: String::new(),
        }),
        EventKind::WorkflowCompleted => Payload::WorkflowCompleted(WorkflowCompleted {
            orders_placed: 0,
            duration_ms: 0,
        }),
        EventKind::WorkflowFailed => Payload::WorkflowFailed(WorkflowFailed {
            step: "x".into(),
            reason: FailureReason::StepFailed,
            detail: String::new(),
        }),
        EventKind::TradingHalted => Payload::TradingHalted(TradingHalted {
            reason: HaltReason::Manual,
            detail: String::new(),
        }),
        EventKind::EventRejected => Payload::EventRejected(EventRejected {
            event_id: EventId::new(),
            event_type: String::new(),
            correlation_id: CorrelationId::new(),
            causation_id: None,
            reason: String::new(),
        }),
    }
}
