//! The roots of open workflows and which workflows have closed, shared read-only with
//! the actors: recovery needs the `workflow.started.v1` of a failed workflow (its day,
//! mode and attempt) to retry it, execution the day of a plan for the daily risk budget,
//! and whether the plan's workflow is still open (a redelivered plan of a timed-out
//! workflow must not place orders beside its retry). The broker writes it as events are
//! accepted; it outlives actor restarts, as the broker does.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::events::{CorrelationId, WorkflowStarted};

/// Closed workflows remembered (oldest forgotten first): far more than can be in flight.
const CLOSED_KEPT: usize = 10_000;

#[derive(Clone, Debug, Default)]
pub struct WorkflowRoots {
    roots: Arc<DashMap<CorrelationId, WorkflowStarted>>,
    closed: Arc<Mutex<(HashSet<CorrelationId>, VecDeque<CorrelationId>)>>,
}

impl WorkflowRoots {
    pub fn insert(&self, correlation: CorrelationId, started: WorkflowStarted) {
        self.roots.insert(correlation, started);
    }

    pub fn get(&self, correlation: &CorrelationId) -> Option<WorkflowStarted> {
        self.roots.get(correlation).map(|r| r.value().clone())
    }

    pub fn remove(&self, correlation: &CorrelationId) -> Option<WorkflowStarted> {
        self.roots.remove(correlation).map(|(_, v)| v)
    }

    /// The workflow reached a terminal event.
    pub fn close(&self, correlation: CorrelationId) {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if closed.0.insert(correlation) {
            closed.1.push_back(correlation);
            if closed.1.len() > CLOSED_KEPT {
                if let Some(old) = closed.1.pop_front() {
                    closed.0.remove(&old);
                }
            }
        }
    }

    pub fn is_closed(&self, correlation: &CorrelationId) -> bool {
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(correlation)
    }
}
