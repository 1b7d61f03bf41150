//! The store contract: ONE set of behaviour tests, each run against [`SqliteStore`] (a database
//! in a temporary directory) and against [`PgStore`] (a PostgreSQL database of its own, created
//! for the test and dropped afterwards, even when the test fails).
//!
//! Every behaviour is one `async fn` over the store, followed by `contract!(its_name)`, which
//! makes a module with a `sqlite` and a `postgres` test running it, so both stores answer the
//! very same assertions. The PostgreSQL server is `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it cannot be reached the `postgres`
//! variants FAIL — they never skip.
//!
//! Concurrency is real: racing calls run as separate tokio tasks on a multi-threaded runtime,
//! released together by a barrier, and on PostgreSQL each holds its own pooled connection, so
//! races are decided by the database (unique constraints, conditional updates, row locks,
//! `SKIP LOCKED`), which is what the assertions check. Time is never waited for: every method
//! takes its clock as an argument, so lease ends and expiries are reached by passing a later
//! `now`.
//!
//! [`SqliteStore`]: smartpay_store::SqliteStore
//! [`PgStore`]: smartpay_store::PgStore

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Runs one contract behaviour against both stores: `contract!(name)` after
/// `async fn name(store: &Shared)` makes `mod name` with a `sqlite` and a `postgres` test that
/// each run that one body on a fresh store of their kind (`store` derefs to `&dyn Store`; clone
/// it to hand the store to concurrent tasks).
macro_rules! contract {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let harness = $crate::support::Harness::sqlite();
                super::$name(&harness.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let harness = $crate::support::Harness::postgres().await;
                super::$name(&harness.store).await;
            }
        }
    };
}

#[path = "contract/support.rs"]
mod support;

#[path = "contract/auth.rs"]
mod auth;
#[path = "contract/jobs.rs"]
mod jobs;
#[path = "contract/modifications.rs"]
mod modifications;
#[path = "contract/notifications.rs"]
mod notifications;
#[path = "contract/payments.rs"]
mod payments;
#[path = "contract/schema.rs"]
mod schema;
#[path = "contract/vault.rs"]
mod vault;
