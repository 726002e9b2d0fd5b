//! The roots of open workflows and which workflows have closed, shared with the actors:
//! recovery needs the `workflow.started.v1` of a failed workflow (its day, mode and
//! attempt) to retry it, execution the day of a plan for the daily risk budget, and
//! execution and reconciliation whether a workflow is still open (a redelivered plan of
//! a timed-out workflow must not place orders beside its retry; a late settlement of a
//! failed one is not reconciled). The broker writes roots and closings as events are
//! accepted, and forgets a failed workflow's root once recovery's decision is accepted.
//! It outlives actor restarts, as the broker does.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::events::{CorrelationId, WorkflowStarted};

#[derive(Clone, Debug)]
pub struct WorkflowRoots {
    roots: Arc<DashMap<CorrelationId, WorkflowStarted>>,
    closed: Arc<Mutex<(HashSet<CorrelationId>, VecDeque<CorrelationId>)>>,
    closed_kept: usize,
}

impl WorkflowRoots {
    /// Remembers the last `closed_kept` closed workflows (at least one; oldest forgotten
    /// first): the engine keeps far more than can be in flight. A backtest, whose days
    /// close one after another, needs few: a set of thousands missed the cache on every
    /// question.
    pub fn remembering(closed_kept: usize) -> Self {
        Self {
            roots: Arc::default(),
            closed: Arc::default(),
            closed_kept: closed_kept.max(1),
        }
    }

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
            if closed.1.len() > self.closed_kept {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_closed_workflow_is_forgotten_first() {
        let roots = WorkflowRoots::remembering(2);
        let ids: Vec<CorrelationId> = (0..3).map(|_| CorrelationId::new()).collect();
        for id in &ids {
            roots.close(*id);
        }
        assert!(!roots.is_closed(&ids[0]));
        assert!(roots.is_closed(&ids[1]));
        assert!(roots.is_closed(&ids[2]));
        // Closing again does not count twice.
        roots.close(ids[2]);
        assert!(roots.is_closed(&ids[1]));
    }
}
