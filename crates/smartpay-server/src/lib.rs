//! The SmartPay server: configuration, authentication, the HTTP API, use cases and
//! background workers. See `ARCHITECTURE.md` for a walkthrough of a request.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod checkout;
pub mod client_addr;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod files;
pub mod http;
pub mod limiter;
pub mod metrics;
pub mod modify;
pub mod notifications;
pub mod provision;
pub mod resolve;
pub mod secrets;
pub mod telemetry;
pub mod vault;
pub mod verify;
pub mod view;
pub mod widget;
pub mod workers;

pub use app::{AppState, Running, connect_store, open_store, start};
pub use config::{Config, LogFormat, Mode};
