//! The broker's memory of lineage: every accepted event's causation edge, grouped by
//! correlation, and each workflow's stage.
//!
//! Invariants enforced by [`CausationLog::record`]:
//! - an event id is accepted once;
//! - a root (no causation) opens a new correlation, and a correlation has one root;
//! - a child's causation is an event already recorded in the *same* correlation;
//! - a workflow (a chain whose root is `workflow.started.v1`) moves only along
//!   [`WorkflowStage::apply`].
//!
//! Memory is bounded: finished chains are kept for `retain_finished` more chains, then
//! dropped (the durable journal keeps everything).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;

use crate::events::{CorrelationId, Envelope, EventId, EventKind, Payload};
use crate::workflow::{TransitionError, WorkflowStage, WorkflowStatus};

/// Why the broker refused an event.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("event id {0} was already accepted")]
    DuplicateEvent(EventId),
    #[error("causation {causation} is not an earlier event")]
    UnknownCausation { causation: EventId },
    #[error("causation {causation} belongs to correlation {actual}, not {claimed}")]
    CrossCorrelation {
        causation: EventId,
        claimed: CorrelationId,
        actual: CorrelationId,
    },
    #[error("correlation {0} already has a root event")]
    SecondRoot(CorrelationId),
    #[error("{0}")]
    Transition(#[from] TransitionError),
}

/// One accepted event as the log remembers it.
#[derive(Clone, Debug)]
pub struct ChainNode {
    pub event_id: EventId,
    pub causation_id: Option<EventId>,
    pub kind: EventKind,
    pub source: Cow<'static, str>,
    pub seq: u64,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Chain {
    nodes: Vec<ChainNode>,
    /// `None` for a standalone chain (a halt notice); `Some` for a workflow.
    stage: Option<WorkflowStage>,
    opened: Instant,
    closed: Option<Instant>,
    orders_placed: u32,
    orders_denied: u32,
    failure: Option<String>,
}

/// What recording an event changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The workflow's stage after this event (`None`: not a workflow).
    pub stage: Option<WorkflowStage>,
    /// True when this event moved the workflow into a terminal stage.
    pub closed_workflow: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct TreeNode {
    pub event_id: EventId,
    pub event_type: &'static str,
    pub source: String,
    pub seq: u64,
    pub occurred_at: DateTime<Utc>,
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// Number of events in this subtree.
    pub fn size(&self) -> usize {
        1 + self.children.iter().map(TreeNode::size).sum::<usize>()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CausationTree {
    pub correlation_id: CorrelationId,
    pub stage: Option<WorkflowStage>,
    pub root: TreeNode,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkflowSummary {
    pub correlation_id: CorrelationId,
    pub stage: WorkflowStage,
    pub status: WorkflowStatus,
    pub events: usize,
    pub orders_placed: u32,
    /// Orders the risk limits refused: a workflow with any did not reach its target,
    /// even when it completed.
    pub orders_denied: u32,
    pub duration_ms: u64,
    pub failure: Option<String>,
}

/// Hasher for random uuids: their bytes are already uniformly distributed, so folding
/// them is as good as SipHash and several times cheaper on the broker's hot path.
#[derive(Default)]
pub struct UuidHasher(u64);

impl Hasher for UuidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(buf)).rotate_left(29);
        }
    }

    fn write_usize(&mut self, _len: usize) {}
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<UuidHasher>>;

#[derive(Debug)]
pub struct CausationLog {
    index: IdMap<EventId, CorrelationId>,
    chains: IdMap<CorrelationId, Chain>,
    finished: VecDeque<CorrelationId>,
    retain_finished: usize,
}

impl CausationLog {
    pub fn new(retain_finished: usize) -> Self {
        Self {
            index: IdMap::default(),
            chains: IdMap::default(),
            finished: VecDeque::new(),
            retain_finished,
        }
    }

    /// Validates `env` against the lineage rules and, if accepted, records it. `now` is
    /// read only when the event opens or closes a chain (a clock read per event showed
    /// in the broker's profile).
    pub fn record(
        &mut self,
        env: &Envelope,
        seq: u64,
        now: impl FnOnce() -> Instant,
    ) -> Result<Recorded, Refusal> {
        if self.index.contains_key(&env.event_id) {
            return Err(Refusal::DuplicateEvent(env.event_id));
        }
        let node = ChainNode {
            event_id: env.event_id,
            causation_id: env.causation_id,
            kind: env.kind(),
            source: env.source.clone(),
            seq,
            occurred_at: env.occurred_at,
        };
        let recorded = match env.causation_id {
            None => {
                if self.chains.contains_key(&env.correlation_id) {
                    return Err(Refusal::SecondRoot(env.correlation_id));
                }
                let is_workflow = env.kind() == EventKind::WorkflowStarted;
                let now = now();
                // Room for a trading day's chain: growing it from one node moved it
                // three times per workflow.
                let mut nodes = Vec::with_capacity(if is_workflow { 16 } else { 1 });
                nodes.push(node);
                self.chains.insert(
                    env.correlation_id,
                    Chain {
                        nodes,
                        stage: is_workflow.then_some(WorkflowStage::Started),
                        opened: now,
                        closed: (!is_workflow).then_some(now),
                        orders_placed: 0,
                        orders_denied: 0,
                        failure: None,
                    },
                );
                if !is_workflow {
                    self.finish(env.correlation_id);
                }
                Recorded {
                    stage: is_workflow.then_some(WorkflowStage::Started),
                    closed_workflow: false,
                }
            }
            Some(causation) => {
                match self.index.get(&causation) {
                    None => return Err(Refusal::UnknownCausation { causation }),
                    Some(actual) if *actual != env.correlation_id => {
                        return Err(Refusal::CrossCorrelation {
                            causation,
                            claimed: env.correlation_id,
                            actual: *actual,
                        })
                    }
                    Some(_) => {}
                }
                let chain = self
                    .chains
                    .get_mut(&env.correlation_id)
                    .ok_or(Refusal::UnknownCausation { causation })?;
                let mut closed_workflow = false;
                if let Some(stage) = chain.stage {
                    let next = stage.apply(&env.payload)?;
                    if next.is_terminal() && !stage.is_terminal() {
                        closed_workflow = true;
                        chain.closed = Some(now());
                    }
                    chain.stage = Some(next);
                }
                match &env.payload {
                    Payload::OrderSubmitted(_) => chain.orders_placed += 1,
                    Payload::OrderDenied(_) => chain.orders_denied += 1,
                    Payload::WorkflowFailed(f) => {
                        chain.failure = Some(format!("{}: {}", f.reason.as_str(), f.detail))
                    }
                    _ => {}
                }
                chain.nodes.push(node);
                let stage = chain.stage;
                if closed_workflow {
                    self.finish(env.correlation_id);
                }
                Recorded {
                    stage,
                    closed_workflow,
                }
            }
        };
        self.index.insert(env.event_id, env.correlation_id);
        Ok(recorded)
    }

    fn finish(&mut self, correlation: CorrelationId) {
        self.finished.push_back(correlation);
        while self.finished.len() > self.retain_finished {
            if let Some(old) = self.finished.pop_front() {
                if let Some(chain) = self.chains.remove(&old) {
                    for node in &chain.nodes {
                        self.index.remove(&node.event_id);
                    }
                }
            }
        }
    }

    pub fn stage(&self, correlation: &CorrelationId) -> Option<WorkflowStage> {
        self.chains.get(correlation).and_then(|c| c.stage)
    }

    /// The workflow (or chain) the event `id` belongs to, if it is known.
    pub fn correlation_of(&self, id: &EventId) -> Option<CorrelationId> {
        self.index.get(id).copied()
    }

    pub fn contains_event(&self, id: &EventId) -> bool {
        self.index.contains_key(id)
    }

    /// Last event recorded in a correlation (what a broker-made failure is caused by).
    pub fn last_event(&self, correlation: &CorrelationId) -> Option<EventId> {
        self.chains
            .get(correlation)
            .and_then(|c| c.nodes.last())
            .map(|n| n.event_id)
    }

    /// Workflows still open after `timeout` since they started.
    pub fn overdue(&self, now: Instant, timeout: Duration) -> Vec<CorrelationId> {
        let mut out: Vec<(u64, CorrelationId)> = self
            .chains
            .iter()
            .filter(|(_, c)| {
                c.stage.is_some_and(|s| !s.is_terminal())
                    && now.saturating_duration_since(c.opened) >= timeout
            })
            .map(|(id, c)| (c.nodes[0].seq, *id))
            .collect();
        out.sort();
        out.into_iter().map(|(_, id)| id).collect()
    }

    /// Chains currently held in memory.
    pub fn chains_in_memory(&self) -> usize {
        self.chains.len()
    }

    pub fn events_in_memory(&self) -> usize {
        self.index.len()
    }

    pub fn workflow(&self, correlation: &CorrelationId, now: Instant) -> Option<WorkflowSummary> {
        let chain = self.chains.get(correlation)?;
        let stage = chain.stage?;
        let end = chain.closed.unwrap_or(now);
        Some(WorkflowSummary {
            correlation_id: *correlation,
            stage,
            status: stage.status(),
            events: chain.nodes.len(),
            orders_placed: chain.orders_placed,
            orders_denied: chain.orders_denied,
            duration_ms: end.saturating_duration_since(chain.opened).as_millis() as u64,
            failure: chain.failure.clone(),
        })
    }

    /// All workflows in memory, oldest first.
    pub fn workflows(&self, now: Instant) -> Vec<WorkflowSummary> {
        let mut ids: Vec<(u64, CorrelationId)> = self
            .chains
            .iter()
            .filter(|(_, c)| c.stage.is_some())
            .map(|(id, c)| (c.nodes[0].seq, *id))
            .collect();
        ids.sort();
        ids.iter()
            .filter_map(|(_, id)| self.workflow(id, now))
            .collect()
    }

    /// The causation tree of one correlation, children in sequence order.
    pub fn tree(&self, correlation: &CorrelationId) -> Option<CausationTree> {
        let chain = self.chains.get(correlation)?;
        let position: HashMap<EventId, usize> = chain
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.event_id, i))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); chain.nodes.len()];
        for (i, node) in chain.nodes.iter().enumerate() {
            if let Some(parent) = node.causation_id.and_then(|c| position.get(&c)) {
                children[*parent].push(i);
            }
        }
        fn build(i: usize, nodes: &[ChainNode], children: &[Vec<usize>]) -> TreeNode {
            let n = &nodes[i];
            TreeNode {
                event_id: n.event_id,
                event_type: n.kind.as_str(),
                source: n.source.to_string(),
                seq: n.seq,
                occurred_at: n.occurred_at,
                children: children[i]
                    .iter()
                    .map(|c| build(*c, nodes, children))
                    .collect(),
            }
        }
        Some(CausationTree {
            correlation_id: *correlation,
            stage: chain.stage,
            root: build(0, &chain.nodes, &children),
        })
    }
}
