//! System wiring: the start order (registry of the five business modules, then the
//! broker that starts them). The dependencies every actor may use are in `deps`.

use actix::Addr;

use super::broker::{Broker, BrokerSettings};
pub use super::deps::EngineDeps;
use super::supervision::Registry;
use super::{execution, notify, portfolio, reconciliation, recovery, strategy};
use crate::config::BusTransport;
use crate::journal::Journal;

/// The standard registry: the five business actors (but those `bus.remote_roles`
/// gives to worker processes), and the notifier when channels are configured.
pub fn standard_registry(deps: EngineDeps) -> Registry {
    let remote: Vec<String> = match deps.config.bus.transport {
        BusTransport::Nats => deps.config.bus.remote_roles.clone(),
        BusTransport::InProcess => Vec::new(),
    };
    let mut registry = business_registry(deps);
    registry
        .subscriptions
        .retain(|s| !remote.iter().any(|r| r == s.name));
    registry
}

/// Every business actor, wherever the configuration runs it (a worker picks its roles
/// from here).
pub fn business_registry(deps: EngineDeps) -> Registry {
    let notifying = deps.notifier.is_some();
    let mut registry = Registry::new(deps);
    strategy::register(&mut registry);
    portfolio::register(&mut registry);
    execution::register(&mut registry);
    reconciliation::register(&mut registry);
    recovery::register(&mut registry);
    if notifying {
        notify::register(&mut registry);
    }
    registry
}

/// Starts the broker and the actors of `registry` on the current actix system.
pub fn start(registry: Registry) -> Addr<Broker> {
    start_journaled(registry, None)
}

/// [`start`] with every event journaled before it is dispatched.
pub fn start_journaled(registry: Registry, journal: Option<Journal>) -> Addr<Broker> {
    let settings = BrokerSettings::from_config(&registry.deps().config);
    Broker::start_journaled(registry, settings, journal)
}

/// [`start_journaled`], with the workflows the journal shows unfinished held until
/// [`super::broker::ResumeUnfinished`] (after the start-up reconciliation).
pub fn start_holding_unfinished(registry: Registry, journal: Journal) -> Addr<Broker> {
    let settings = BrokerSettings {
        hold_unfinished: true,
        ..BrokerSettings::from_config(&registry.deps().config)
    };
    Broker::start_journaled(registry, settings, Some(journal))
}
