//! Between SmartPay's provider types and PayU's wire format. Unknown order statuses map to
//! `Unknown`, so the engine polls instead of guessing.

use super::wire;
use crate::*;

/// PayU's shopper-cancelled order.
pub const CANCELLED: &str = "payment_provider_payment_cancelled";
/// PayU's rejected order.
pub const REJECTED: &str = "payment_provider_payment_rejected";

pub fn order_request(req: &RedirectRequest) -> wire::OrderRequest {
    wire::OrderRequest {
        ext_order_id: req.payment_id.clone(),
        total_amount: req.amount_minor,
        currency_code: req.currency.clone(),
        description: req.description.clone(),
        continue_url: req.return_url.clone(),
        notify_url: req.notify_url.clone(),
        frame_ancestors: req.frame_ancestors.clone(),
    }
}

/// An order status as SmartPay's provider status; `None` for a status PayU did not document.
pub fn provider_status(status: &str) -> Option<ProviderStatus> {
    Some(match status {
        "NEW" => ProviderStatus::ChallengePending,
        "PENDING" => ProviderStatus::Pending,
        "WAITING_FOR_CONFIRMATION" | "COMPLETED" => ProviderStatus::Authorized,
        "CANCELED" => ProviderStatus::Declined(DeclineReason::Other(CANCELLED.into())),
        "REJECTED" => ProviderStatus::Declined(DeclineReason::Other(REJECTED.into())),
        _ => return None,
    })
}

/// PayU's answer to a status read.
pub fn lookup(o: &wire::Order) -> Lookup {
    let Some(status) = provider_status(&o.status) else { return Lookup::Unknown };
    Lookup::Found(AuthorizationState {
        reference: o.order_id.clone(),
        status,
        amount_minor: o.total_amount,
        currency: o.currency_code.clone(),
    })
}

/// PayU's answer to an order creation. A new order is a redirect to its approval page; a
/// repeated creation may find the order already decided. An answer about another payment or
/// amount, or with an approval URL that is not http(s), is no usable answer.
pub fn redirect_outcome(req: &RedirectRequest, o: &wire::OrderCreated) -> AuthorizeOutcome {
    let same =
        o.ext_order_id == req.payment_id && o.total_amount == req.amount_minor && o.currency_code == req.currency;
    if !same {
        tracing::warn!(provider = "payu", "the order created is not the payment's");
        return AuthorizeOutcome::Unknown;
    }
    let reference = o.order_id.clone();
    match provider_status(&o.status) {
        Some(ProviderStatus::ChallengePending) if crate::service::web_url(&o.redirect_uri).is_some() => {
            AuthorizeOutcome::Redirect { reference, url: o.redirect_uri.clone() }
        }
        Some(ProviderStatus::ChallengePending) => AuthorizeOutcome::Unknown,
        Some(ProviderStatus::Pending) => AuthorizeOutcome::Pending { reference },
        Some(ProviderStatus::Authorized) => AuthorizeOutcome::Authorized { reference },
        Some(ProviderStatus::Declined(reason)) => AuthorizeOutcome::Declined { reference: Some(reference), reason },
        None => AuthorizeOutcome::Unknown,
    }
}
