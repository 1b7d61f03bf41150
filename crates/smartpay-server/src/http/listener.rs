//! The listener: accepts connections up to a cap and serves each with hyper's HTTP/1 builder
//! under a header-read deadline and a request-head size limit, then drains them on shutdown.
//!
//! What each limit stops (docs/operations.md, "Limits and timeouts"):
//! - `header_read_timeout`: slow-header (slowloris) and idle sockets. hyper starts the timer
//!   whenever a connection waits for a request head, so it is also the idle keep-alive timeout.
//! - `max_header_bytes`: huge heads are refused with 431 before they are buffered.
//! - `max_connections`: a connection beyond the cap gets an immediate `503` and is closed, so
//!   file descriptors stay free for the store and for the connections already served. The cap
//!   is lowered to what the process's descriptor limit leaves room for.
//!
//! Body-read and whole-request timeouts are tower-http layers on the router (`http.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Descriptors kept free for the store, the provider connections, logs and the refusals
/// themselves.
const RESERVED_FDS: usize = 64;
/// How long shutdown waits for in-flight requests before it closes their connections.
const DRAIN: Duration = Duration::from_secs(30);

/// The answer to a connection beyond the cap (it never reaches the router).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
connection: close\r\ncontent-length: 91\r\n\r\n{\"errors\":[{\"code\":\"too_many_connections\",\"message\":\"Too many connections. Retry later.\"}]}";

/// The connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
}

/// The soft limit on open files of this process (Linux), if it can be read.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// The connection cap: `configured`, lowered to leave [`RESERVED_FDS`] of the descriptor limit.
pub fn effective_max_connections(configured: usize) -> usize {
    match open_files_limit() {
        Some(fds) => configured.min(fds.saturating_sub(RESERVED_FDS).max(8)),
        None => configured,
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets in-flight requests
/// finish (at most [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    on_refused: impl Fn() + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        // The read buffer holds at most one head (plus what the client pipelined after it):
        // a head that does not fit is refused with 431 instead of being buffered.
        .max_buf_size((limits.max_header_bytes + 4096).max(8192))
        .keep_alive(true);
    let stopped = async move {
        let mut shutdown = shutdown;
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning; the cap normally
                    // keeps us from getting here.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            on_refused();
            // Best effort: the socket is new, so its send buffer has room for the whole answer.
            let _ = stream.try_write(REFUSAL);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are the client's (reset, header timeout, malformed request): hyper
            // already answered what could be answered.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown: connections still open after the drain period were closed");
    }
    Ok(())
}
