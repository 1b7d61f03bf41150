//! Between SmartPay's provider types and the sandbox acquirer's wire format. Unknown wire
//! statuses map to `Unknown`, so the engine polls instead of guessing.

use super::wire;
use crate::*;

/// The wire request: a card's number and CVC, or a token (no CVC, flagged as a stored
/// credential) with the expiry stored along with it.
pub fn authorization_request(req: &AuthorizeRequest) -> wire::AuthorizationRequest {
    let (pan, token, expiry, cvc, holder) = match &req.source {
        PaymentSource::Card(card) => {
            (card.number.expose().to_owned(), None, card.expiry, card.cvc.expose().to_owned(), card.holder.clone())
        }
        PaymentSource::Token { token, expiry } => (String::new(), Some(token.clone()), *expiry, String::new(), None),
    };
    wire::AuthorizationRequest {
        pan,
        stored_credential: token.is_some(),
        token,
        expiry_month: expiry.month,
        expiry_year: expiry.year,
        cvc,
        holder,
        amount: req.amount_minor,
        currency: req.currency.clone(),
        idempotency_key: req.payment_id.clone(),
        return_url: req.return_url.clone(),
        frame_ancestors: req.frame_ancestors.clone(),
    }
}

/// The wire request that stores a card.
pub fn token_request(req: &TokenizeRequest) -> wire::TokenRequest {
    wire::TokenRequest {
        pan: req.number.expose().to_owned(),
        expiry_month: req.expiry.month,
        expiry_year: req.expiry.year,
        holder: req.holder.clone(),
    }
}

pub fn decline_reason(code: Option<&str>) -> DeclineReason {
    match code {
        Some("card_declined") | None => DeclineReason::CardDeclined,
        Some("insufficient_funds") => DeclineReason::InsufficientFunds,
        Some("expired_card") => DeclineReason::ExpiredCard,
        Some("card_stolen") => DeclineReason::CardStolen,
        Some("authentication_failed") => DeclineReason::AuthenticationFailed,
        Some(other) => DeclineReason::Other(format!("payment_provider_{other}")),
    }
}

pub fn authorize_outcome(a: &wire::Authorization) -> AuthorizeOutcome {
    match a.status.as_str() {
        "AUTHORIZED" => AuthorizeOutcome::Authorized { reference: a.id.clone() },
        "DECLINED" => AuthorizeOutcome::Declined {
            reference: Some(a.id.clone()),
            reason: decline_reason(a.decline_code.as_deref()),
        },
        "PENDING" => AuthorizeOutcome::Pending { reference: a.id.clone() },
        "CHALLENGE" => match &a.challenge_url {
            Some(url) => AuthorizeOutcome::ChallengeRequired { reference: a.id.clone(), url: url.clone() },
            None => AuthorizeOutcome::Unknown,
        },
        _ => AuthorizeOutcome::Unknown,
    }
}

/// The acquirer's answer to a lookup; an unknown status is `Lookup::Unknown`.
pub fn lookup(a: &wire::Authorization) -> Lookup {
    let status = match a.status.as_str() {
        "AUTHORIZED" => ProviderStatus::Authorized,
        "DECLINED" => ProviderStatus::Declined(decline_reason(a.decline_code.as_deref())),
        "PENDING" => ProviderStatus::Pending,
        "CHALLENGE" => ProviderStatus::ChallengePending,
        _ => return Lookup::Unknown,
    };
    Lookup::Found(AuthorizationState {
        reference: a.id.clone(),
        status,
        amount_minor: a.amount,
        currency: a.currency.clone(),
    })
}

/// A modification's answer (the same format at the acquirer and at PayU).
pub fn modify_outcome(m: &wire::Modification) -> ModifyOutcome {
    match m.status.as_str() {
        "SUCCEEDED" => ModifyOutcome::Succeeded { reference: m.id.clone() },
        "FAILED" => ModifyOutcome::Failed { reason: m.failure_code.clone().unwrap_or_else(|| "failed".into()) },
        "PENDING" => ModifyOutcome::Pending { reference: m.id.clone() },
        _ => ModifyOutcome::Unknown,
    }
}
