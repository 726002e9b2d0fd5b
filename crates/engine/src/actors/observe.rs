//! The engine's HTTP window for operators: `/metrics` (Prometheus text) and `/healthz`
//! (broker, venue and remote workers as JSON; 503 when trading is halted, the journal
//! failed, the venue's last call failed or a role given to workers has no live one).

use std::net::SocketAddr;
use std::sync::Arc;

use actix::Addr;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::broker::{Broker, QueryStats};
use crate::bus::remote::{RemoteHealth, RemoteView};
use crate::events::TradingHalted;
use crate::metrics::metrics;
use crate::venues::metered::{MeteredVenue, VenueHealth};

struct Window {
    broker: Addr<Broker>,
    venue: Arc<MeteredVenue>,
    remote: Option<RemoteView>,
}

#[derive(Serialize)]
struct ActorHealth {
    name: &'static str,
    running: bool,
    restarts: u64,
    unacknowledged: usize,
}

#[derive(Serialize)]
struct BrokerHealth {
    reachable: bool,
    last_seq: u64,
    halted: Option<TradingHalted>,
    journal_failure: Option<String>,
    dead_letters: usize,
    actors: Vec<ActorHealth>,
}

#[derive(Serialize)]
struct Health {
    healthy: bool,
    broker: BrokerHealth,
    venue: VenueHealth,
    /// Actors served by worker processes (`bus.remote_roles`): unhealthy while a role
    /// has no live worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<RemoteHealth>,
}

async fn render_metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().render(),
    )
}

async fn health(State(w): State<Arc<Window>>) -> impl IntoResponse {
    let venue = w.venue.health();
    let broker = match w.broker.send(QueryStats).await {
        Ok(s) => BrokerHealth {
            reachable: true,
            last_seq: s.last_seq,
            halted: s.halted,
            journal_failure: s.journal_failure,
            dead_letters: s.dead_letters.len(),
            actors: s
                .actors
                .iter()
                .map(|a| ActorHealth {
                    name: a.name,
                    running: a.running,
                    restarts: a.restarts,
                    unacknowledged: a.unacknowledged,
                })
                .collect(),
        },
        Err(_) => BrokerHealth {
            reachable: false,
            last_seq: 0,
            halted: None,
            journal_failure: None,
            dead_letters: 0,
            actors: vec![],
        },
    };
    let remote = w.remote.as_ref().map(RemoteView::health);
    let healthy = broker.reachable
        && broker.halted.is_none()
        && broker.journal_failure.is_none()
        && venue.last_ok != Some(false)
        && remote.as_ref().is_none_or(|r| r.unserved.is_empty());
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(Health {
            healthy,
            broker,
            venue,
            remote,
        }),
    )
}

/// Binds `listen` and serves for the engine's life; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    broker: Addr<Broker>,
    venue: Arc<MeteredVenue>,
    remote: Option<RemoteView>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(health))
        .with_state(Arc::new(Window {
            broker,
            venue,
            remote,
        }));
    actix_rt::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}
