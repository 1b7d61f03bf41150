//! Capture, refund, cancel and cancelOrRefund (CONTRACT §6–§7), for merchants' requests, for
//! automatic captures and cancellations, and for the sandbox's settlements.
//!
//! In phases: validate → open the modification (the store checks the `modificationId`, the
//! currency and the money rules and writes the modification in one transaction) → ask the
//! provider, with the modification's internal id as its idempotency key → record the answer
//! (and the status change it leads to) → answer, keeping the first answer for replays.
//! A modification whose provider did not answer stays pending; a repeated request with the
//! same `modificationId` asks the provider again with the same key, so a crash between the
//! provider call and the local commit never causes a second effect.

use std::sync::atomic::Ordering;

use smartpay_domain::json::Value;
use smartpay_domain::modification::{ModificationStatus, ModificationType, Refusal, Request};
use smartpay_domain::modify::{self, Operation};
use smartpay_providers::{ModifyOutcome, ModifyRequest};
use smartpay_store::{
    BeginOutcome, EventOrigin, JobKind, ModificationAnswer, ModificationRequest, NewModification, Payment,
    PaymentUpdate,
};

use crate::app::{AppState, InFlight};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::secrets::sha256;

/// A modification endpoint's answer.
pub struct ModifyAnswer {
    pub body: Vec<u8>,
    /// The first answer to this `modificationId`, replayed.
    pub replayed: bool,
}

/// Holds the modification `pk` as "in flight" in this process; `None` when another request
/// of this process drives it.
fn claim<'a>(state: &'a AppState, pk: &str) -> Option<InFlight<'a>> {
    state.claim_in_flight(vec![(String::new(), "modification", pk.to_owned())]).ok()
}

fn refusal(r: Refusal, currency: &str, ignored: Vec<String>) -> ApiError {
    match r {
        Refusal::InvalidState(status) => ApiError::InvalidState { status, ignored },
        Refusal::ExceedsCapturable { remaining } => ApiError::AmountExceeds {
            code: ErrorCode::AmountExceedsCapturable,
            remaining: crate::view::amount_text(remaining, currency),
            currency: currency.to_owned(),
            ignored,
        },
        Refusal::ExceedsRefundable { remaining } => ApiError::AmountExceeds {
            code: ErrorCode::AmountExceedsRefundable,
            remaining: crate::view::amount_text(remaining, currency),
            currency: currency.to_owned(),
            ignored,
        },
    }
}

/// A merchant's capture, refund, cancel or cancelOrRefund request.
pub async fn request(state: &AppState, who: &Principal, op: Operation, body: &Value) -> Result<ModifyAnswer, ApiError> {
    let validated = modify::validate(op, body);
    if let Some(key) = smartpay_domain::checkout::merchant_key_of(body)
        && !key.eq_ignore_ascii_case(&who.merchant_id)
    {
        let ignored = match &validated {
            Ok(v) => v.ignored.clone(),
            Err((_, ignored)) => ignored.clone(),
        };
        return Err(ApiError::MerchantKeyMismatch { ignored });
    }
    let valid = validated.map_err(|(violations, ignored)| ApiError::Invalid {
        problems: violations.into_iter().map(Problem::from).collect(),
        ignored,
    })?;
    let ignored = valid.ignored.clone();
    let new = NewModification {
        pk: uuid::Uuid::now_v7().to_string(),
        merchant_id: who.merchant_id.clone(),
        payment_id: valid.transaction_id.clone(),
        modification_id: valid.modification_id.clone(),
        request: ModificationRequest::Merchant(valid.request),
        currency: valid.amount.map(|m| m.currency.code().to_owned()),
        description: valid.description.clone(),
        custom_references: valid.custom_references_json.clone(),
        fingerprint: sha256(&[valid.canonical.as_bytes()]).to_vec(),
        at: state.now(),
        origin: EventOrigin::Api,
        resolve_at: Some(resolve_at(state)),
        authorize_first: None,
    };
    let retry = new.clone();
    let begin = state.store.begin_modification(new).await?;
    let (payment, pk, resumed) = match begin {
        BeginOutcome::Started { payment, pk } => (payment, pk, false),
        // Same request again, not answered: still running here (409 below), or interrupted (a
        // crash, a provider that did not answer) — then it is driven again with the same key.
        BeginOutcome::Unanswered { payment, pk } => (payment, pk, true),
        BeginOutcome::Replay { response } => return Ok(ModifyAnswer { body: response, replayed: true }),
        BeginOutcome::Conflict => {
            return Err(ApiError::IdempotencyConflict { property: "modificationId", ignored });
        }
        BeginOutcome::NotFound => return Err(ApiError::NotFound),
        BeginOutcome::CurrencyMismatch { expected } => {
            return Err(ApiError::Invalid {
                problems: vec![
                    Problem::new(ErrorCode::CurrencyMismatch)
                        .at("modifiedAmount.currencyCode")
                        .with("expected", smartpay_domain::violation::Fact::Text(expected)),
                ],
                ignored,
            });
        }
        BeginOutcome::Refused { refusal: r, currency } => return Err(refusal(r, &currency, ignored)),
    };
    let Some(_running) = claim(state, &pk) else {
        return Err(ApiError::RequestInProgress { property: "modificationId" });
    };
    let payment = if resumed {
        // Another request may have finished it between our look and our claim: look again.
        match state.store.begin_modification(retry).await? {
            BeginOutcome::Replay { response } => return Ok(ModifyAnswer { body: response, replayed: true }),
            BeginOutcome::Unanswered { payment, .. } => payment,
            _ => return Err(ApiError::Internal("a modification changed under its claim".into())),
        }
    } else {
        payment
    };
    let send = if resumed { Send::Again } else { Send::First };
    let payment = drive(state, payment, &pk, EventOrigin::Api, send).await?;
    let response = crate::view::modification_response(&payment, &pk, ignored)?;
    let body = serde_json::to_vec(&response).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Only a final answer is kept: a pending one is asked again on the next request.
    let done = payment.modifications.iter().find(|m| m.pk == pk).is_some_and(|m| !m.status.is_pending());
    if done {
        state.store.save_modification_response(&pk, body.clone()).await?;
        state.failpoint("modification.answered");
    }
    Ok(ModifyAnswer { body, replayed: false })
}

/// When pending resolution first looks at a modification opened now, should it still be pending.
pub(crate) fn resolve_at(state: &AppState) -> smartpay_domain::Millis {
    state.now().plus_millis(state.config.pending_first_poll_ms)
}

/// Whether a modification goes to the provider for the first time, or again (a retry or a
/// poll: the first request may have reached the provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Send {
    First,
    Again,
}

/// Asks the provider for the pending modification `pk` and records its answer. Returns the
/// payment as it is afterwards. Asking again with the same idempotency key (the modification's
/// id) is how a pending or unanswered modification is polled: the provider answers what it did
/// the first time, or how far it got. `send` says whether the provider may have seen it before.
pub(crate) async fn drive(
    state: &AppState,
    payment: Payment,
    pk: &str,
    origin: EventOrigin,
    send: Send,
) -> Result<Payment, ApiError> {
    let Some(m) = payment.modifications.iter().find(|m| m.pk == pk).cloned() else {
        return Err(ApiError::Internal("modification lost".into()));
    };
    if !m.status.is_pending() {
        return Ok(payment);
    }
    let provider = crate::engine::provider_of(state, &payment)?;
    let Some(reference) = payment.reconciliation_reference_id.clone() else {
        return Err(ApiError::Internal("an authorized payment without a provider reference".into()));
    };
    let req = ModifyRequest {
        reference,
        modification_id: pk.to_owned(),
        amount_minor: m.amount_minor,
        currency: m.currency.clone(),
    };
    let kind = m.kind.as_str().to_ascii_lowercase();
    state.failpoint(&format!("{kind}.opened"));
    let counters = &state.metrics.counters;
    let outcome = match m.kind {
        ModificationType::Capture => {
            counters.provider_captures.fetch_add(1, Ordering::Relaxed);
            provider.capture(req).await
        }
        ModificationType::Refund => {
            counters.provider_refunds.fetch_add(1, Ordering::Relaxed);
            provider.refund(req).await
        }
        ModificationType::Cancellation => {
            counters.provider_cancels.fetch_add(1, Ordering::Relaxed);
            provider.cancel(req).await
        }
        ModificationType::Settlement | ModificationType::Chargeback => return Ok(payment),
    };
    let outcome = match outcome {
        Ok(o) => o,
        // The provider refused the request itself. The first time, it did nothing: the
        // modification failed. Sent again, the first request may have worked: still unknown.
        Err(e) if send == Send::First => {
            tracing::error!(transaction_id = %payment.id, kind = m.kind.as_str(), error = %e, "the provider rejected a modification request");
            ModifyOutcome::Failed { reason: "rejected".into() }
        }
        Err(e) => {
            tracing::warn!(transaction_id = %payment.id, kind = m.kind.as_str(), error = %e, "the provider rejected a repeated modification request; still unknown");
            ModifyOutcome::Unknown
        }
    };
    let (status, reference, failure) = match outcome {
        ModifyOutcome::Succeeded { reference } => (m.kind.final_status(true), Some(reference), None),
        ModifyOutcome::Failed { reason } => {
            tracing::info!(transaction_id = %payment.id, kind = m.kind.as_str(), reason = %reason, "provider refused a modification");
            (m.kind.final_status(false), None, Some(failure_code(m.kind, &reason)))
        }
        ModifyOutcome::Pending { reference } => {
            // Left pending for the pending-resolution work, with what it polls by: the
            // provider's reference and this modification's id (the idempotency key sent).
            tracing::info!(transaction_id = %payment.id, modification = %pk, "the provider will confirm later");
            state.store.note_modification_reference(pk, &reference).await?;
            return Ok(state.store.payment(&payment.merchant_id, &payment.id).await?.unwrap_or(payment));
        }
        ModifyOutcome::Unknown => {
            tracing::warn!(transaction_id = %payment.id, modification = %pk, "no answer from the provider");
            return Ok(payment);
        }
    };
    state.failpoint(&format!("{kind}.provider_answered"));
    let now = state.now();
    let schedule = if status == ModificationStatus::Captured && state.config.sandbox_enabled() {
        vec![(JobKind::Settlement, now.plus_millis(state.config.sandbox_settlement_delay_ms))]
    } else {
        Vec::new()
    };
    let answer = ModificationAnswer {
        status,
        reconciliation_reference_id: reference,
        failure_code: failure,
        at: now,
        schedule,
        origin,
    };
    let after = state.store.finish_modification(pk, answer).await?;
    state.failpoint(&format!("{kind}.recorded"));
    match after {
        Some(p) => Ok(p),
        None => state.store.payment(&payment.merchant_id, &payment.id).await?.ok_or(ApiError::NotFound),
    }
}

/// The MOD1 code of a provider's refusal.
fn failure_code(kind: ModificationType, reason: &str) -> String {
    let what = match kind {
        ModificationType::Capture => "capture",
        ModificationType::Refund => "refund",
        _ => "cancellation",
    };
    let reason: String = reason.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
    if reason.is_empty() { format!("payment_provider_{what}_failed") } else { format!("payment_provider_{reason}") }
}

/// A modification SmartPay makes itself (automatic or delayed capture, automatic cancellation,
/// settlement): opened under a deterministic `modificationId`, so a retry after a crash finds
/// and finishes the same one. `Ok(None)` when the payment's state refuses it.
pub async fn internal(
    state: &AppState,
    merchant_id: &str,
    payment_id: &str,
    modification_id: String,
    request: ModificationRequest,
    authorize_first: Option<PaymentUpdate>,
    origin: EventOrigin,
) -> Result<Option<Payment>, ApiError> {
    let begin = state
        .store
        .begin_modification(NewModification {
            pk: uuid::Uuid::now_v7().to_string(),
            merchant_id: merchant_id.to_owned(),
            payment_id: payment_id.to_owned(),
            fingerprint: sha256(&[modification_id.as_bytes()]).to_vec(),
            modification_id,
            request,
            currency: None,
            description: None,
            custom_references: None,
            at: state.now(),
            origin,
            resolve_at: Some(resolve_at(state)),
            authorize_first,
        })
        .await?;
    let (payment, pk, send) = match begin {
        BeginOutcome::Started { payment, pk } => (payment, pk, Send::First),
        BeginOutcome::Unanswered { payment, pk } => (payment, pk, Send::Again),
        BeginOutcome::Replay { .. } => return Ok(state.store.payment(merchant_id, payment_id).await?),
        BeginOutcome::Refused { .. } | BeginOutcome::NotFound | BeginOutcome::CurrencyMismatch { .. } => {
            return Ok(None);
        }
        BeginOutcome::Conflict => return Err(ApiError::Internal("automatic modification id reused".into())),
    };
    let Some(_running) = claim(state, &pk) else { return Ok(Some(payment)) };
    drive(state, payment, &pk, origin, send).await.map(Some)
}

/// The automatic capture of a payment the provider just authorized: authorization and capture
/// request in one write, then the capture.
pub async fn authorize_and_capture(
    state: &AppState,
    payment: &Payment,
    update: PaymentUpdate,
    origin: EventOrigin,
) -> Result<Option<Payment>, ApiError> {
    internal(
        state,
        &payment.merchant_id,
        &payment.id,
        format!("auto-capture-{}", payment.id),
        ModificationRequest::Merchant(Request::Capture(None)),
        Some(update),
        origin,
    )
    .await
}

/// Pending resolution of the modification `pk`: asks the provider again (same idempotency
/// key) unless another request of this process is driving it. `Ok(true)` once it is final.
pub(crate) async fn resolve(state: &AppState, merchant_id: &str, payment_id: &str, pk: &str) -> Result<bool, ApiError> {
    let Some(payment) = state.store.payment(merchant_id, payment_id).await? else { return Ok(true) };
    let pending = |p: &Payment| p.modifications.iter().any(|m| m.pk == pk && m.status.is_pending());
    if !pending(&payment) {
        return Ok(true);
    }
    let Some(_running) = claim(state, pk) else { return Ok(false) };
    let after = drive(state, payment, pk, EventOrigin::Automated, Send::Again).await?;
    Ok(!pending(&after))
}

/// Ends a modification nobody could confirm within the deadline as failed, with `code`.
/// `false` when another request of this process drives it right now (nothing was changed).
pub(crate) async fn give_up(state: &AppState, pk: &str, kind: ModificationType, code: &str) -> Result<bool, ApiError> {
    let Some(_running) = claim(state, pk) else { return Ok(false) };
    let answer = ModificationAnswer {
        status: kind.final_status(false),
        reconciliation_reference_id: None,
        failure_code: Some(code.to_owned()),
        at: state.now(),
        schedule: Vec::new(),
        origin: EventOrigin::Automated,
    };
    state.store.finish_modification(pk, answer).await?;
    Ok(true)
}
