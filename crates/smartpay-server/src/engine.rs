//! The payment engine: a shopper's card submission through a provider, 3-D Secure completion,
//! and automatic capture. Phases: find the checkout by its token → defend (rate limits, attempt
//! cap) → validate the card → CREATED → AUTHORIZATION_PENDING → ask the provider → record its
//! outcome → capture when the merchant captures automatically. Every status change goes through
//! `Store::apply_event`, i.e. through the domain's transition function, with a history row.
//!
//! Card numbers and CVCs exist only in memory for the provider call: they are never stored,
//! logged or returned (masked types, canary-tested).

use std::sync::atomic::Ordering;

use smartpay_domain::card::{CardError, CardNumber, Cvc, Expiry};
use smartpay_domain::modification::CaptureMode;
use smartpay_domain::{Event, PaymentStatus};
use smartpay_providers::{
    AuthorizeOutcome, AuthorizeRequest, Card, Lookup, PaymentSource, Provider, ProviderStatus, RedirectRequest,
};
use smartpay_store::{EventOrigin, JobKind, MerchantStatus, Payment, PaymentUpdate};

use crate::app::AppState;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::modify;

/// What the shopper typed, straight from the card frame.
pub struct CardInput {
    pub number: String,
    pub expiry: String,
    pub cvc: String,
    pub holder_name: Option<String>,
    /// The shopper chose to store the card in the checkout's vault account.
    pub store: bool,
}

/// What the widget learns: never a decline reason in detail (fraud), never card data.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAnswer {
    pub transaction_id: String,
    pub transaction_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_url: Option<String>,
    /// A message id the widget translates (`result:authorized`, `result:declined`, …).
    pub message: &'static str,
    /// The stored option the card became, when the shopper chose to store it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_payment_option_reference: Option<String>,
    /// `ERROR_INIT_STORE_PAYMENT_OPTION` when the shopper chose to store the card and storing
    /// failed (the payment went ahead with the card as a guest payment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<&'static str>,
}

impl PaymentAnswer {
    /// The answer for `payment_id` in `status`; the optional parts are added by the caller.
    pub fn new(payment_id: &str, status: PaymentStatus, challenge_url: Option<String>, message: &'static str) -> Self {
        PaymentAnswer {
            transaction_id: payment_id.to_owned(),
            transaction_status: status.as_str().to_owned(),
            challenge_url,
            message,
            stored_payment_option_reference: None,
            store_error: None,
        }
    }
}

/// The checkout a widget token belongs to; 404 for unknown tokens, 401 once it expired.
pub async fn checkout_for_token(state: &AppState, token: &str) -> Result<Payment, ApiError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound);
    }
    let digest = state.secrets.token_digest(token);
    let p = state.store.payment_by_token(&digest).await?.ok_or(ApiError::NotFound)?;
    // A disabled merchant's checkouts cannot be paid: to the shopper they no longer exist.
    let active = state.store.merchant(&p.merchant_id).await?.is_some_and(|m| m.status == MerchantStatus::Active);
    if !active {
        return Err(ApiError::NotFound);
    }
    let expired =
        p.status == PaymentStatus::Expired || (p.status == PaymentStatus::Created && p.expires_at <= state.now());
    if expired {
        return Err(ApiError::CheckoutExpired);
    }
    Ok(p)
}

fn card_problem(e: CardError) -> Problem {
    let code = match e {
        CardError::Expired => ErrorCode::CardExpired,
        CardError::Brand => ErrorCode::UnsupportedCardBrand,
        _ => ErrorCode::InvalidCardData,
    };
    Problem::new(code).at(e.property())
}

/// This month (year, month) by the state's clock.
fn this_month(state: &AppState) -> (i64, u32) {
    let (y, m, _) = state.now().date();
    (y, m)
}

/// Parses and checks the card, reporting every bad field (by name, never by value).
fn parse_card(input: &CardInput, this_month: (i64, u32)) -> Result<(Card, &'static str), ApiError> {
    let mut problems = Vec::new();
    let number = CardNumber::parse(&input.number).map_err(|e| problems.push(card_problem(e))).ok();
    let expiry = Expiry::parse(&input.expiry, this_month).map_err(|e| problems.push(card_problem(e))).ok();
    let cvc = number
        .as_ref()
        .and_then(|(_, brand)| Cvc::parse(&input.cvc, *brand).map_err(|e| problems.push(card_problem(e))).ok());
    let holder = input.holder_name.as_deref().map(str::trim).filter(|h| !h.is_empty());
    if let Some(h) = holder
        && (h.chars().count() > 100 || h.chars().any(smartpay_domain::schema::is_forbidden_char))
    {
        problems.push(card_problem(CardError::Holder));
    }
    match (number, expiry, cvc) {
        (Some((number, brand)), Some(expiry), Some(cvc)) if problems.is_empty() => {
            Ok((Card { number, expiry, cvc, holder: holder.map(str::to_owned) }, brand.code()))
        }
        _ => Err(ApiError::Invalid { problems, ignored: vec![] }),
    }
}

/// The provider that takes cards.
pub(crate) fn card_provider(state: &AppState) -> Result<std::sync::Arc<dyn Provider>, ApiError> {
    provider_named(state, "sandbox")
}

/// A provider by name; a payment keeps the name of the one that handles it.
pub(crate) fn provider_named(state: &AppState, name: &str) -> Result<std::sync::Arc<dyn Provider>, ApiError> {
    state.providers().get(name).ok_or_else(|| ApiError::Internal(format!("provider {name} is not enabled")))
}

/// The provider that handles `payment`.
pub(crate) fn provider_of(state: &AppState, payment: &Payment) -> Result<std::sync::Arc<dyn Provider>, ApiError> {
    provider_named(state, payment.provider.as_deref().unwrap_or("sandbox"))
}

/// The asynchronous payment methods the widget offers, with the provider behind each.
pub const REDIRECT_METHODS: &[(&str, &str)] = &[("PAYU", "payu")];

/// The update that moves a checkout to AUTHORIZATION_PENDING for `provider`: the pending
/// resolution job is scheduled in the same transaction, so a crash before the provider's
/// answer is recorded cannot leave the payment pending for ever.
fn authorization_requested(state: &AppState, provider: &str, method: &str) -> PaymentUpdate {
    PaymentUpdate {
        provider: Some(provider.into()),
        payment_method: Some(method.into()),
        attempt_cap: Some(state.config.max_card_attempts),
        origin: EventOrigin::Widget,
        schedule: vec![(JobKind::ResolveAuthorization, state.now().plus_millis(state.config.pending_first_poll_ms))],
        ..Default::default()
    }
}

/// Moves `payment` from CREATED to AUTHORIZATION_PENDING, or says why it cannot.
async fn start_authorization(state: &AppState, payment: &Payment, update: PaymentUpdate) -> Result<(), ApiError> {
    let started = state
        .store
        .apply_event(&payment.id, PaymentStatus::Created, Event::AuthorizationRequested, state.now(), update)
        .await?;
    if started.is_some() {
        return Ok(());
    }
    // Either the attempt cap was reached, or another submission won the race.
    let now = state.store.payment(&payment.merchant_id, &payment.id).await?.ok_or(ApiError::NotFound)?;
    if now.status == PaymentStatus::Created {
        return Err(locked(payment));
    }
    Err(ApiError::InvalidState { status: now.status, ignored: Vec::new() })
}

/// The shopper chose an asynchronous method (`PAYU`): the payment is started at its provider,
/// and the shopper is sent to the provider's approval page (`challengeUrl` of the answer).
pub async fn start_redirect(
    state: &AppState,
    payment: Payment,
    method: &str,
    client_ip: &str,
) -> Result<PaymentAnswer, ApiError> {
    state.ip_limiter.check(client_ip).map_err(|wait| ApiError::RateLimited { retry_after: wait })?;
    state.merchant_limiter.check(&payment.merchant_id).map_err(|wait| ApiError::RateLimited { retry_after: wait })?;
    if payment.status != PaymentStatus::Created {
        return Err(ApiError::InvalidState { status: payment.status, ignored: Vec::new() });
    }
    let Some((method, provider_name)) = REDIRECT_METHODS.iter().find(|(m, _)| *m == method) else {
        return Err(ApiError::Invalid {
            problems: vec![Problem::new(ErrorCode::InvalidValue).at("paymentMethod")],
            ignored: Vec::new(),
        });
    };
    let provider = provider_named(state, provider_name)?;
    start_authorization(state, &payment, authorization_requested(state, provider.name(), method)).await?;
    let base = state.public_base();
    let frame_ancestors = crate::widget::allowed_origins(state, &payment.merchant_id).await?;
    let outcome = provider
        .start_redirect(RedirectRequest {
            payment_id: payment.id.clone(),
            amount_minor: payment.amount_minor,
            currency: payment.currency.clone(),
            description: payment.description.clone(),
            return_url: format!("{base}/widget/challenge-return"),
            notify_url: Some(format!("{base}/providers/{}/notifications", provider.name())),
            frame_ancestors,
        })
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        // Refused as malformed: nothing started at the provider; resolution finds nothing
        // and ends the payment as failed.
        Err(e) => {
            tracing::error!(transaction_id = %payment.id, error = %e, "the provider refused to start a payment");
            AuthorizeOutcome::Unknown
        }
    };
    record_authorization(state, &payment, outcome, EventOrigin::Widget).await
}

/// The shopper submits a card for the checkout `token`.
/// `payment` is the checkout the shopper's token resolved to ([`checkout_for_token`]).
pub async fn submit_card(
    state: &AppState,
    payment: Payment,
    input: CardInput,
    client_ip: &str,
) -> Result<PaymentAnswer, ApiError> {
    // Card-testing defence: velocity per client and per merchant, then a cap per checkout.
    state.ip_limiter.check(client_ip).map_err(|wait| ApiError::RateLimited { retry_after: wait })?;
    state.merchant_limiter.check(&payment.merchant_id).map_err(|wait| ApiError::RateLimited { retry_after: wait })?;
    if payment.status != PaymentStatus::Created {
        return Err(ApiError::InvalidState { status: payment.status, ignored: Vec::new() });
    }
    let max = state.config.max_card_attempts;
    let (card, method) = match parse_card(&input, this_month(state)) {
        Ok(c) => c,
        Err(refused) => {
            // Refused card data counts as an attempt too: that is what card testing looks like.
            if state.store.count_attempt(&payment.id, max).await?.is_none() {
                return Err(locked(&payment));
            }
            return Err(refused);
        }
    };
    let provider = card_provider(state)?;
    let account = payment.customer_account_id.clone().filter(|_| input.store);
    start_authorization(state, &payment, authorization_requested(state, provider.name(), method)).await?;
    state.failpoint("authorization.pending_committed");
    // The checkout is ours now (no other submission can run): store the card first, so the
    // payment is made with the provider's token like every later one, and the clear number is
    // not needed after this request.
    let (source, option, created, store_error) = match account {
        Some(account) => match store_for_payment(state, &payment, &account, &card, method).await {
            Ok((token, expiry, reference, created)) => {
                (PaymentSource::Token { token: token.to_string(), expiry }, Some(reference), created, None)
            }
            Err(e) => {
                tracing::warn!(transaction_id = %payment.id, error = %e, "storing the card failed; paying without storing");
                (PaymentSource::Card(card), None, false, Some(STORE_FAILED))
            }
        },
        None => (PaymentSource::Card(card), None, false, None),
    };
    let mut answer = authorize_with(state, &payment, provider.as_ref(), source).await?;
    let declined = answer.transaction_status == PaymentStatus::AuthorizationFailed.as_str();
    match (&option, payment.customer_account_id.as_deref()) {
        // A card stored by this request that the provider declined is not kept; one the
        // account held before stays.
        (Some(reference), Some(account)) if declined && created => {
            state.store.delete_payment_option(&payment.merchant_id, account, reference).await?;
        }
        (Some(_), _) if declined => {}
        _ => answer.stored_payment_option_reference = option,
    }
    answer.store_error = store_error;
    Ok(answer)
}

/// Stores the shopper's card in the checkout's account and records it on the payment: the
/// provider's token to pay with, the card's expiry, the option's reference, and whether this
/// request created the option.
async fn store_for_payment(
    state: &AppState,
    payment: &Payment,
    account: &str,
    card: &Card,
    method: &str,
) -> Result<(zeroize::Zeroizing<String>, Expiry, String, bool), ApiError> {
    let (number, expiry, holder) = (card.number.clone(), card.expiry, card.holder.clone());
    let stored =
        crate::accounts::store_card(state, &payment.merchant_id, account, &number, method, expiry, holder).await?;
    let option = state
        .store
        .payment_option(&payment.merchant_id, account, &stored.view.reference)
        .await?
        .ok_or(ApiError::NotFound)?;
    let token = state.vault.open_token(&option).map_err(|_| ApiError::VaultUnavailable)?;
    let facts = PaymentUpdate {
        stored_option_reference: Some(option.reference.clone()),
        new_option_reference: stored.created.then(|| option.reference.clone()),
        ..Default::default()
    };
    record_facts(state, payment, facts).await?;
    let expiry = Expiry { month: option.expiry_month, year: option.expiry_year };
    Ok((token, expiry, option.reference, stored.created))
}

/// The widget's code for a card the shopper chose to store that could not be stored.
const STORE_FAILED: &str = "ERROR_INIT_STORE_PAYMENT_OPTION";

/// Asks `provider` to authorize the pending `payment` with `source` and records the outcome.
async fn authorize_with(
    state: &AppState,
    payment: &Payment,
    provider: &dyn Provider,
    source: PaymentSource,
) -> Result<PaymentAnswer, ApiError> {
    let return_url = format!("{}/widget/challenge-return", state.public_base());
    // The challenge page is shown in the card frame inside the merchant's page.
    let frame_ancestors = crate::widget::allowed_origins(state, &payment.merchant_id).await?;
    let outcome = provider
        .authorize(AuthorizeRequest {
            payment_id: payment.id.clone(),
            amount_minor: payment.amount_minor,
            currency: payment.currency.clone(),
            source,
            return_url: Some(return_url),
            frame_ancestors,
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state.metrics.counters.card_submissions.fetch_add(1, Ordering::Relaxed);
    state.failpoint("authorization.provider_answered");
    record_authorization(state, payment, outcome, EventOrigin::Widget).await
}

/// The shopper pays with a card stored in the checkout's vault account: the provider gets its
/// token, never the number; the CVC is not asked again (a card-on-file payment, decided in
/// docs/decisions/0006).
pub async fn submit_stored(
    state: &AppState,
    payment: Payment,
    reference: &str,
    client_ip: &str,
) -> Result<PaymentAnswer, ApiError> {
    state.ip_limiter.check(client_ip).map_err(|wait| ApiError::RateLimited { retry_after: wait })?;
    state.merchant_limiter.check(&payment.merchant_id).map_err(|wait| ApiError::RateLimited { retry_after: wait })?;
    if payment.status != PaymentStatus::Created {
        return Err(ApiError::InvalidState { status: payment.status, ignored: Vec::new() });
    }
    let Some(account) = payment.customer_account_id.as_deref() else { return Err(ApiError::NotFound) };
    crate::accounts::vault_ready(state)?;
    let option =
        state.store.payment_option(&payment.merchant_id, account, reference).await?.ok_or(ApiError::NotFound)?;
    let (expired, _) = crate::accounts::expiry_flags(option.expiry_month, option.expiry_year, state.now());
    if expired {
        return Err(ApiError::invalid(Problem::new(ErrorCode::CardExpired).at("storedPaymentOptionReference")));
    }
    let token = state.vault.open_token(&option).map_err(|_| ApiError::VaultUnavailable)?;
    let provider = provider_named(state, &option.provider)?;
    let mut update = authorization_requested(state, provider.name(), &option.code);
    update.stored_option_reference = Some(option.reference.clone());
    start_authorization(state, &payment, update).await?;
    state.failpoint("authorization.pending_committed");
    let expiry = Expiry { month: option.expiry_month, year: option.expiry_year };
    let source = PaymentSource::Token { token: token.to_string(), expiry };
    let mut answer = authorize_with(state, &payment, provider.as_ref(), source).await?;
    answer.stored_payment_option_reference = Some(option.reference);
    Ok(answer)
}

fn locked(payment: &Payment) -> ApiError {
    tracing::warn!(transaction_id = %payment.id, "card submissions capped: checkout locked");
    ApiError::CheckoutLocked
}

/// Records a provider's authorization outcome on a payment in AUTHORIZATION_PENDING, for the
/// shopper's request (`origin` widget) or for pending resolution (`origin` automated).
pub(crate) async fn record_authorization(
    state: &AppState,
    payment: &Payment,
    outcome: AuthorizeOutcome,
    origin: EventOrigin,
) -> Result<PaymentAnswer, ApiError> {
    let now = state.now();
    let pending = PaymentStatus::AuthorizationPending;
    let answer = |status: PaymentStatus, challenge_url: Option<String>, message| {
        PaymentAnswer::new(&payment.id, status, challenge_url, message)
    };
    match outcome {
        AuthorizeOutcome::Authorized { reference } => {
            let policy = capture_policy(state, &payment.merchant_id).await?;
            let mut update = PaymentUpdate {
                reconciliation_reference_id: Some(reference),
                challenge_url: Some(None),
                reason: Some("authorized by the provider".into()),
                origin,
                ..Default::default()
            };
            if let Some(after) = policy.auto_cancel_seconds {
                update.schedule.push((JobKind::AutoCancel, now.plus_millis(after.saturating_mul(1000))));
            }
            let status = match policy.mode {
                // The authorization and the capture request are one write; then the capture.
                CaptureMode::Auto => match modify::authorize_and_capture(state, payment, update, origin).await? {
                    Some(p) => p.status,
                    None => current_status(state, payment).await?,
                },
                CaptureMode::Manual | CaptureMode::Delayed => {
                    if policy.mode == CaptureMode::Delayed {
                        let delay = policy.capture_delay_seconds.saturating_mul(1000);
                        update.schedule.push((JobKind::DelayedCapture, now.plus_millis(delay)));
                    }
                    match state.store.apply_event(&payment.id, pending, Event::Authorized, now, update).await? {
                        Some(s) => s,
                        None => current_status(state, payment).await?,
                    }
                }
            };
            Ok(answer(status, None, "result:authorized"))
        }
        AuthorizeOutcome::Declined { reference, reason } => {
            tracing::info!(transaction_id = %payment.id, reason = reason.code(), "authorization declined");
            forget_new_option(state, payment).await?;
            let update = PaymentUpdate {
                reconciliation_reference_id: reference,
                decline_code: Some(reason.code().to_owned()),
                challenge_url: Some(None),
                reason: Some(reason.code().to_owned()),
                origin,
                ..Default::default()
            };
            let status = state.store.apply_event(&payment.id, pending, Event::AuthorizationFailed, now, update).await?;
            Ok(answer(status.unwrap_or(PaymentStatus::AuthorizationFailed), None, "result:declined"))
        }
        AuthorizeOutcome::Pending { reference } => {
            record_facts(
                state,
                payment,
                PaymentUpdate { reconciliation_reference_id: Some(reference), ..Default::default() },
            )
            .await?;
            Ok(answer(pending, None, "result:pending"))
        }
        AuthorizeOutcome::ChallengeRequired { reference, url } | AuthorizeOutcome::Redirect { reference, url } => {
            let update = PaymentUpdate {
                reconciliation_reference_id: Some(reference),
                challenge_url: Some(Some(url.clone())),
                ..Default::default()
            };
            record_facts(state, payment, update).await?;
            Ok(answer(pending, Some(url), "result:challenge"))
        }
        AuthorizeOutcome::Unknown => {
            tracing::warn!(transaction_id = %payment.id, "provider gave no answer in time; pending resolution will ask");
            Ok(answer(pending, None, "result:pending"))
        }
    }
}

/// A card this payment stored is not kept when its authorization fails (a decline after a
/// challenge or a pending answer, a deadline); an option stored before stays.
pub(crate) async fn forget_new_option(state: &AppState, payment: &Payment) -> Result<(), ApiError> {
    if let (Some(reference), Some(account)) = (&payment.new_option_reference, &payment.customer_account_id) {
        state.store.delete_payment_option(&payment.merchant_id, account, reference).await?;
    }
    Ok(())
}

/// Writes facts without a status change (a pending payment stays pending).
async fn record_facts(state: &AppState, payment: &Payment, update: PaymentUpdate) -> Result<(), ApiError> {
    state.store.record_facts(&payment.id, PaymentStatus::AuthorizationPending, update).await?;
    Ok(())
}

async fn current_status(state: &AppState, payment: &Payment) -> Result<PaymentStatus, ApiError> {
    Ok(state
        .store
        .payment(&payment.merchant_id, &payment.id)
        .await?
        .map_or(PaymentStatus::AuthorizationPending, |p| p.status))
}

/// When a merchant's authorizations are captured and cancelled.
struct CapturePolicy {
    mode: CaptureMode,
    capture_delay_seconds: u64,
    auto_cancel_seconds: Option<u64>,
}

/// The merchant's capture policy; a disabled merchant captures nothing automatically.
async fn capture_policy(state: &AppState, merchant_id: &str) -> Result<CapturePolicy, ApiError> {
    let merchant = state.store.merchant(merchant_id).await?;
    let mode = match &merchant {
        Some(m) if m.status == MerchantStatus::Active => m.capture_mode,
        Some(_) => CaptureMode::Manual,
        None => CaptureMode::Auto,
    };
    Ok(CapturePolicy {
        mode,
        capture_delay_seconds: merchant
            .as_ref()
            .and_then(|m| m.capture_delay_seconds)
            .unwrap_or(state.config.capture_delay_seconds),
        auto_cancel_seconds: merchant.and_then(|m| m.auto_cancel_seconds),
    })
}

/// The outcome a provider's status answer means for an authorization.
pub(crate) fn outcome_of(status: ProviderStatus, reference: String, challenge_url: Option<String>) -> AuthorizeOutcome {
    match status {
        ProviderStatus::Authorized => AuthorizeOutcome::Authorized { reference },
        ProviderStatus::Declined(reason) => AuthorizeOutcome::Declined { reference: Some(reference), reason },
        ProviderStatus::ChallengePending => {
            AuthorizeOutcome::ChallengeRequired { url: challenge_url.unwrap_or_default(), reference }
        }
        ProviderStatus::Pending => AuthorizeOutcome::Pending { reference },
    }
}

/// After a 3-D Secure challenge or an approval page: asks the provider how it ended and
/// records it. Still undecided, the payment stays pending and is polled soon.
pub async fn complete_challenge(state: &AppState, token: &str) -> Result<PaymentAnswer, ApiError> {
    let payment = checkout_for_token(state, token).await?;
    if !matches!(payment.status, PaymentStatus::Created | PaymentStatus::AuthorizationPending) {
        // Decided already (the provider's notification and a poll can beat the shopper back):
        // the shopper learns how it ended.
        let message = match payment.status {
            PaymentStatus::AuthorizationFailed | PaymentStatus::Cancelled | PaymentStatus::Expired => "result:declined",
            _ => "result:authorized",
        };
        return Ok(PaymentAnswer::new(&payment.id, payment.status, None, message));
    }
    let (Some(reference), true) =
        (payment.reconciliation_reference_id.clone(), payment.status == PaymentStatus::AuthorizationPending)
    else {
        return Err(ApiError::InvalidState { status: payment.status, ignored: Vec::new() });
    };
    let provider = provider_of(state, &payment)?;
    let outcome = match provider.status(&reference).await.map_err(|e| ApiError::Internal(e.to_string()))? {
        Lookup::Found(found)
            if found.amount_minor == payment.amount_minor && found.currency.eq_ignore_ascii_case(&payment.currency) =>
        {
            outcome_of(found.status, reference, payment.challenge_url.clone())
        }
        // Contradictions and silence are for pending resolution to sort out, not the shopper.
        Lookup::Found(_) | Lookup::NotFound | Lookup::Unknown => AuthorizeOutcome::Unknown,
    };
    if matches!(outcome, AuthorizeOutcome::Pending { .. } | AuthorizeOutcome::Unknown) {
        state.store.poll_soon(&payment.id, state.now()).await?;
    }
    record_authorization(state, &payment, outcome, EventOrigin::Widget).await
}
