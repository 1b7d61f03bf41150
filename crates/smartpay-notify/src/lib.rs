//! Notification (webhook) delivery toward merchants (CONTRACT §12).
//!
//! This crate knows nothing about the store or the server; the server stores events in its
//! outbox and calls in here to:
//! - render an [`Event`] as its JSON body ([`payload`]), deterministic so that every attempt
//!   carries the same bytes and never any request echo (reliability row D9);
//! - sign it ([`signature_header`]) and let merchants check it ([`verify`]);
//! - refuse merchant URLs that point inside our network ([`check_url`], [`resolve_checked`],
//!   row D8);
//! - send one attempt ([`Deliverer::deliver`]) with no auth, Basic, or OAuth client credentials;
//! - plan the next attempt ([`next_attempt_delay_ms`], row D6).

mod delivery;
mod payload;
mod retry;
mod signature;
mod ssrf;

pub use delivery::{
    Attempt, AttemptError, Auth, Deliverer, MAX_ANSWER_BYTES, MAX_TOKEN_ANSWER_BYTES, Target, USER_AGENT,
};
pub use payload::{Event, ObjectType, Origin, format_created_at, payload};
pub use retry::{SCHEDULE_MS, next_attempt_delay_ms};
pub use signature::{VerifyError, signature_header, verify};
pub use ssrf::{MAX_URL_LEN, Profile, UrlError, address_allowed, check_url, resolve_checked};
