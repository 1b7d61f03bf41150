//! A stored payment as the API shows it: the reference's response model (Get Payment Status,
//! and the modification endpoints' form with the single `modification`), its amounts, and the
//! MOD1 details of provider refusals (reference §3.2, §3.5, §4.5).

use smartpay_api_types as api;
use smartpay_domain::modification::ModificationStatus;
use smartpay_domain::{Currency, money};
use smartpay_store::{Modification, Payment};

use crate::error::ApiError;

/// An amount in minor units as the API's exact decimal.
pub fn amount(minor: i64, currency: &str) -> Result<api::Amount, ApiError> {
    let exponent = Currency::from_code(currency).map_or(2, |c| c.exponent());
    api::Amount::from_decimal_text(money::format_minor(minor, exponent))
        .ok_or_else(|| ApiError::Internal("amount formatting".into()))
}

/// The amount as text in major units (`10.99`), for error context.
pub fn amount_text(minor: i64, currency: &str) -> String {
    let exponent = Currency::from_code(currency).map_or(2, |c| c.exponent());
    money::format_minor(minor, exponent)
}

fn amounts(p: &Payment) -> Result<api::PaymentAmounts, ApiError> {
    let l = p.ledger();
    let a = |minor: i64| amount(minor, &p.currency);
    Ok(api::PaymentAmounts {
        authorized: a(l.authorized)?,
        captured: a(l.captured)?,
        refunded: a(l.refunded)?,
        capture_pending: a(l.capture_pending)?,
        refund_pending: a(l.refund_pending)?,
        capturable: a(l.capturable())?,
        refundable: a(l.refundable())?,
        currency_code: p.currency.clone(),
    })
}

/// MOD1 details of a provider's refusal (`code` is the MOD1 `error`).
fn mod1(code: &str, gateway: &str) -> (Option<String>, Option<api::ErrorDetails>, Option<String>) {
    let mut context = serde_json::Map::new();
    context.insert("code".into(), code.into());
    (
        Some(code.to_owned()),
        Some(api::ErrorDetails {
            context,
            gateway_description: gateway.to_owned(),
            payment_provider_description: code.to_owned(),
        }),
        Some(gateway.to_owned()),
    )
}

fn failure_of(m: &Modification) -> Option<(&str, &'static str)> {
    let gateway = match m.status {
        ModificationStatus::CaptureFailed => "The payment provider refused the capture.",
        ModificationStatus::RefundFailed => "The payment provider refused the refund.",
        ModificationStatus::CancellationFailed => "The payment provider refused the cancellation.",
        _ => return None,
    };
    Some((m.failure_code.as_deref().unwrap_or("payment_provider_refused"), gateway))
}

/// One modification as the API shows it.
pub fn modification(m: &Modification) -> Result<api::Modification, ApiError> {
    let modification_amount = api::ModificationAmount {
        amount: amount(m.amount_minor, &m.currency)?,
        currency_code: m.currency.clone(),
        description: m.description.clone(),
    };
    let (error, error_details, message) = match failure_of(m) {
        Some((code, gateway)) => mod1(code, gateway),
        None => (None, None, None),
    };
    Ok(api::Modification {
        modification_data: api::ModificationData {
            kind: m.kind.as_str().to_owned(),
            modification_id: m.modification_id.clone(),
            reconciliation_reference_id: m.reconciliation_reference_id.clone(),
        },
        creation_date: m.created_at.to_iso8601(),
        status: m.status.as_str().to_owned(),
        last_status_date: m.last_status_at.to_iso8601(),
        status_history: m
            .history
            .iter()
            .map(|h| api::ModificationStatusEntry {
                status: h.status.as_str().to_owned(),
                status_date: h.at.to_iso8601(),
                modification_amount: modification_amount.clone(),
            })
            .collect(),
        modification_amount,
        error,
        error_details,
        message,
    })
}

fn overview(p: &Payment) -> Result<api::TransactionOverview, ApiError> {
    let custom_references = match &p.custom_references {
        Some(json) => {
            Some(serde_json::from_str::<api::CustomReferences>(json).map_err(|e| ApiError::Internal(e.to_string()))?)
        }
        None => None,
    };
    Ok(api::TransactionOverview {
        transaction_id: p.id.clone(),
        payment_method: p.payment_method.clone(),
        customer_account_id: p.customer_account_id.clone(),
        amount: amount(p.amount_minor, &p.currency)?,
        currency_code: p.currency.clone(),
        mit: p.mit,
        custom_references,
    })
}

fn history(p: &Payment) -> Vec<api::StatusHistoryEntry> {
    p.history
        .iter()
        .map(|h| api::StatusHistoryEntry { status: h.status.as_str().to_owned(), status_date: h.at.to_iso8601() })
        .collect()
}

/// The reference's response model for a stored payment (Get Payment Status).
pub fn status_response(p: &Payment) -> Result<api::PaymentStatusResponse, ApiError> {
    let (error, error_details, message) = match &p.decline_code {
        Some(code) => mod1(code, "The payment provider declined the authorization."),
        None => (None, None, None),
    };
    Ok(api::PaymentStatusResponse {
        transaction_id: p.id.clone(),
        reconciliation_reference_id: p.reconciliation_reference_id.clone(),
        description: p.description.clone(),
        payment_status: p.status.as_str().to_owned(),
        creation_date: p.created_at.to_iso8601(),
        last_status_date: p.last_status_at.to_iso8601(),
        transaction_overview: overview(p)?,
        modifications: p.modifications.iter().map(modification).collect::<Result<_, _>>()?,
        decline_reason: p.decline_code.clone(),
        status_history: history(p),
        amounts: amounts(p)?,
        error,
        error_details,
        message,
    })
}

/// The modification endpoints' answer: the model with the one modification `pk`.
pub fn modification_response(
    p: &Payment,
    pk: &str,
    ignored: Vec<String>,
) -> Result<api::ModificationResponse, ApiError> {
    let m =
        p.modifications.iter().find(|m| m.pk == pk).ok_or_else(|| ApiError::Internal("modification lost".into()))?;
    let (error, error_details, message) = match failure_of(m) {
        Some((code, gateway)) => mod1(code, gateway),
        None => (None, None, None),
    };
    let s = status_response(p)?;
    Ok(api::ModificationResponse {
        transaction_id: s.transaction_id,
        reconciliation_reference_id: s.reconciliation_reference_id,
        description: s.description,
        payment_status: s.payment_status,
        creation_date: s.creation_date,
        last_status_date: s.last_status_date,
        transaction_overview: s.transaction_overview,
        modification: modification(m)?,
        status_history: s.status_history,
        amounts: s.amounts,
        error,
        error_details,
        message,
        ignored_properties: ignored,
    })
}
