//! Handler faults for drills, wrapped around a business actor's real handler.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::actors::supervision::{EventHandler, HandlerFault, Reaction};
use crate::events::{Envelope, EventId, EventKind};

/// Counts the faults a drill injected.
#[derive(Clone, Debug, Default)]
pub struct Injected(Arc<AtomicU32>);

impl Injected {
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }

    fn add(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What goes wrong, and on which event type.
#[derive(Clone, Debug)]
pub enum HandlerFaultKind {
    /// Panic on the next `times` deliveries of `kind` (across restarts).
    PanicOn { kind: EventKind, times: u32 },
    /// The first event of `kind` panics its handler every time it is delivered.
    Poison { kind: EventKind },
    /// Handle the next `times` events of `kind` fully (venue calls included), then
    /// crash instead of publishing: the broker redelivers what was already done.
    CrashAfterEffects { kind: EventKind, times: u32 },
}

/// Shared between a wrapper's incarnations: the fault survives the restarts it causes,
/// and can be armed again (the soak draws a new fault every day).
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    armed: Arc<Mutex<Armed>>,
    pub injected: Injected,
}

#[derive(Debug, Default)]
struct Armed {
    kind: Option<HandlerFaultKind>,
    remaining: u32,
    poisoned: Option<EventId>,
}

impl FaultPlan {
    pub fn new(kind: HandlerFaultKind, injected: Injected) -> Self {
        let plan = Self {
            armed: Default::default(),
            injected,
        };
        plan.arm(Some(kind));
        plan
    }

    /// Replaces the fault (`None`: no fault).
    pub fn arm(&self, kind: Option<HandlerFaultKind>) {
        let remaining = match &kind {
            Some(HandlerFaultKind::PanicOn { times, .. })
            | Some(HandlerFaultKind::CrashAfterEffects { times, .. }) => *times,
            _ => 0,
        };
        *self.armed.lock().unwrap_or_else(|p| p.into_inner()) = Armed {
            kind,
            remaining,
            poisoned: None,
        };
    }

    /// What to do with `event`.
    fn decide(&self, event: &Envelope) -> Action {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let kind = event.kind();
        let action = match armed.kind.clone() {
            Some(HandlerFaultKind::PanicOn { kind: k, .. }) if k == kind && armed.remaining > 0 => {
                armed.remaining -= 1;
                Action::Panic
            }
            Some(HandlerFaultKind::Poison { kind: k }) if k == kind => {
                let id = *armed.poisoned.get_or_insert(event.event_id);
                if id == event.event_id {
                    Action::Panic
                } else {
                    Action::Pass
                }
            }
            Some(HandlerFaultKind::CrashAfterEffects { kind: k, .. })
                if k == kind && armed.remaining > 0 =>
            {
                armed.remaining -= 1;
                Action::CrashAfter
            }
            _ => Action::Pass,
        };
        if action != Action::Pass {
            self.injected.add();
        }
        action
    }

    /// Wraps one handler incarnation.
    pub fn wrap(&self, inner: Box<dyn EventHandler>) -> Box<dyn EventHandler> {
        Box::new(Faulty {
            inner,
            plan: self.clone(),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Pass,
    Panic,
    CrashAfter,
}

struct Faulty {
    inner: Box<dyn EventHandler>,
    plan: FaultPlan,
}

impl EventHandler for Faulty {
    fn handle(&mut self, event: &Arc<Envelope>) -> Result<Reaction, HandlerFault> {
        match self.plan.decide(event) {
            Action::Pass => self.inner.handle(event),
            Action::Panic => panic!(
                "drill: injected panic on {} {}",
                event.event_type(),
                event.event_id
            ),
            Action::CrashAfter => {
                let crash =
                    || HandlerFault("drill: crashed after its effects, before publishing".into());
                match self.inner.handle(event)? {
                    Reaction::Publish(_) => Err(crash()),
                    Reaction::Later(pending) => Ok(Reaction::Later(Box::pin(async move {
                        pending.await?;
                        Err(crash())
                    }))),
                    Reaction::Streamed(stream) => Ok(Reaction::Streamed(Box::new(move |sink| {
                        let pending = stream(sink);
                        Box::pin(async move {
                            pending.await?;
                            Err(crash())
                        })
                    }))),
                }
            }
        }
    }
}
