//! The operators' listener (`admin_listen`, loopback by default): `/metrics` in the Prometheus
//! text format, and the health probes. Metrics are not on the public listener: they describe
//! traffic and errors, which is nobody else's business.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::handlers;
use crate::app::AppState;

pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(handlers::metrics))
        .route("/health/live", get(handlers::live))
        .route("/health/ready", get(handlers::ready))
        .with_state(state)
}
