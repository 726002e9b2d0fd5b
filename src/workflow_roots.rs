//! The roots of open workflows, shared read-only with the actors: recovery needs the
//! `workflow.started.v1` of a failed workflow (its day, mode and attempt) to retry it,
//! execution the day of a plan for the daily risk budget. The broker writes it as roots
//! are accepted; it outlives actor restarts, as the broker does.

use std::sync::Arc;

use dashmap::DashMap;

use crate::events::{CorrelationId, WorkflowStarted};

#[derive(Clone, Debug, Default)]
pub struct WorkflowRoots(Arc<DashMap<CorrelationId, WorkflowStarted>>);

impl WorkflowRoots {
    pub fn insert(&self, correlation: CorrelationId, started: WorkflowStarted) {
        self.0.insert(correlation, started);
    }

    pub fn get(&self, correlation: &CorrelationId) -> Option<WorkflowStarted> {
        self.0.get(correlation).map(|r| r.value().clone())
    }

    pub fn remove(&self, correlation: &CorrelationId) -> Option<WorkflowStarted> {
        self.0.remove(correlation).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
