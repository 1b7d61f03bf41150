//! SmartPay's domain: the rules, with no IO and no async.
//!
//! - [`money`]: exact amounts in minor units of ISO 4217 currencies.
//! - [`json`]: the strict JSON reader request bodies go through.
//! - [`schema`] and [`checkout`]: table-driven validation of request bodies.
//! - [`status`]: the status model and its one transition function.
//! - [`modification`]: captures, refunds, cancellations and the money rules they obey.
//! - [`modify`]: the bodies of the modification endpoints, as rule tables.
//! - [`time`]: instants and their ISO 8601 form.
//! - [`card`]: card brands, Luhn, expiry and CVC rules, masked card types.
//! - [`html`]: escaping for the pages SmartPay renders.
//! - [`violation`]: rule violations with stable codes.

pub mod account;
pub mod card;
pub mod checkout;
pub mod html;
pub mod json;
pub mod modification;
pub mod modify;
pub mod money;
pub mod schema;
pub mod status;
pub mod time;
pub mod violation;

pub use money::{Currency, Money};
pub use status::{Event, PaymentStatus};
pub use time::Millis;
