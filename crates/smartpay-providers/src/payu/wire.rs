//! The PayU-like wire format (JSON, camelCase, amounts in minor units). Modifications and errors
//! use the same shapes as the sandbox acquirer's.

use serde::{Deserialize, Serialize};

pub use crate::sandbox::wire::{ErrorBody, Modification, ModificationRequest};

/// `POST /api/v2_1/orders`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRequest {
    /// The merchant's (SmartPay's) id of the payment; repeating it answers the first order.
    pub ext_order_id: String,
    pub total_amount: i64,
    pub currency_code: String,
    pub description: String,
    /// Where the approval page sends the shopper back to.
    pub continue_url: String,
    /// Where notifications about the order are POSTed.
    #[serde(default)]
    pub notify_url: Option<String>,
    /// Origins allowed to hold the approval page besides SmartPay's own (the merchant's pages).
    #[serde(default)]
    pub frame_ancestors: Vec<String>,
}

/// The answer to an order creation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    pub order_id: String,
    pub ext_order_id: String,
    /// The approval page, as a browser reaches it.
    pub redirect_uri: String,
    /// `NEW` for a new order; a repeated creation answers the order's current status.
    pub status: String,
    pub total_amount: i64,
    pub currency_code: String,
}

/// An order's state: `NEW`, `PENDING`, `WAITING_FOR_CONFIRMATION`, `COMPLETED`, `CANCELED` or
/// `REJECTED`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: String,
    pub ext_order_id: String,
    pub status: String,
    pub total_amount: i64,
    pub currency_code: String,
    /// Sum of the successful captures.
    #[serde(default)]
    pub captured: i64,
    /// Sum of the refunds that have succeeded (pending ones are not counted).
    #[serde(default)]
    pub refunded: i64,
    /// Whether an authorized order was cancelled (its status stays the authorization's).
    #[serde(default)]
    pub cancelled: bool,
}

/// What PayU POSTs to an order's `notifyUrl`, signed in the `OpenPayu-Signature` header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub event_id: String,
    pub order_id: String,
    pub ext_order_id: String,
    pub status: String,
}

/// `POST /test/orders/{orderId}/script` (test controls): each given field replaces the current
/// one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Script {
    /// Acts as the shopper on the approval page: `true` approves, `false` declines (only while the
    /// order is `NEW`).
    #[serde(default)]
    pub approve: Option<bool>,
    /// The next N status reads answer `PENDING` before the order's own status.
    #[serde(default)]
    pub pending_polls: Option<u32>,
    /// The next N status reads answer HTTP 500.
    #[serde(default)]
    pub fail_polls: Option<u32>,
    /// Status reads report this amount instead of the order's.
    #[serde(default)]
    pub amount_override: Option<i64>,
    /// Status reads report this currency instead of the order's.
    #[serde(default)]
    pub currency_override: Option<String>,
}

/// `GET /test/stats` (test controls): calls the fake has answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Order reads, by id or by `extOrderId`, scripted failures included.
    pub status_reads: u64,
    /// Valid order creations, repeats of an `extOrderId` included.
    pub order_creates: u64,
    /// Valid capture, refund and cancellation requests, repeats included.
    pub modifications: u64,
    /// Notifications delivered (answered 2xx).
    pub notifications_delivered: u64,
    /// Notifications waiting for their delay, being sent or between retries.
    pub notifications_in_flight: u64,
    /// Orders held in memory now.
    pub orders: u64,
}
