//! Vault accounts and their stored payment options (reference §3.10–§3.14, CONTRACT §8): the
//! use cases behind `/accounts/…` and the widget's stored-card journeys. Another merchant's
//! account or option does not exist (404); an unavailable vault is 503.

use smartpay_domain::Millis;
use smartpay_domain::card::{CardNumber, Expiry};
use smartpay_domain::json::Value;
use smartpay_providers::{TokenizeOutcome, TokenizeRequest};
use smartpay_store::StoredOption;

use crate::app::AppState;
use crate::error::{ApiError, ErrorCode, Problem};

/// One stored option as the API and the widget show it (reference §3.11).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptionView {
    /// e.g. "VISA", "Mastercard", "AMEX".
    pub name: String,
    /// VISA, MSTRCRD, AMEX.
    pub code: String,
    /// BIN 6 + `****` + last 4.
    pub carrier_number: String,
    /// The storedPaymentOptionReference.
    pub reference: String,
    pub is_default: bool,
    pub is_expired: bool,
    /// Expires within 30 days.
    pub expires_soon: bool,
    /// MM/YYYY.
    pub expiry_date: String,
}

/// `{"result": [...]}` (reference §3.10, §3.11).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct OptionList {
    pub result: Vec<OptionView>,
}

fn name_of(code: &str) -> &'static str {
    match code {
        "VISA" => "VISA",
        "MSTRCRD" => "Mastercard",
        "AMEX" => "AMEX",
        _ => "Card",
    }
}

/// Whether a card valid through `month`/`year` has expired at `now`, and whether it expires
/// within 30 days.
pub fn expiry_flags(month: u8, year: u16, now: Millis) -> (bool, bool) {
    let (y, m, _) = now.date();
    let (ey, em) = (i64::from(year), u32::from(month));
    let expired = (ey, em) < (y, m);
    // Valid through the last day of its month: it ends when the next month starts.
    let (ny, nm) = if em == 12 { (ey + 1, 1) } else { (ey, em + 1) };
    let end_ms = smartpay_domain::time::days_from_civil(ny, nm, 1).saturating_mul(86_400_000);
    let soon = !expired && end_ms - now.0 <= 30 * 86_400_000;
    (expired, soon)
}

pub fn view(o: &StoredOption, now: Millis) -> OptionView {
    let (is_expired, expires_soon) = expiry_flags(o.expiry_month, o.expiry_year, now);
    OptionView {
        name: name_of(&o.code).to_owned(),
        code: o.code.clone(),
        carrier_number: o.masked.clone(),
        reference: o.reference.clone(),
        is_default: o.is_default,
        is_expired,
        expires_soon,
        expiry_date: format!("{:02}/{:04}", o.expiry_month, o.expiry_year),
    }
}

fn check_account(account_id: &str) -> Result<(), ApiError> {
    smartpay_domain::account::check_account_id(account_id).map_err(|v| ApiError::invalid(Problem::from(v)))
}

fn check_reference(reference: &str) -> Result<(), ApiError> {
    if reference.is_empty() || reference.len() > 64 || !reference.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

/// The vault must be able to serve.
pub fn vault_ready(state: &AppState) -> Result<(), ApiError> {
    state.vault.status().map_err(|_| ApiError::VaultUnavailable)
}

/// Every option of an account; 404 when the merchant has no such account.
pub async fn list(state: &AppState, merchant_id: &str, account_id: &str) -> Result<Vec<OptionView>, ApiError> {
    check_account(account_id)?;
    vault_ready(state)?;
    state.store.account(merchant_id, account_id).await?.ok_or(ApiError::NotFound)?;
    let now = state.now();
    Ok(state.store.payment_options(merchant_id, account_id).await?.iter().map(|o| view(o, now)).collect())
}

/// One option; 404 when it is not this merchant's account's.
pub async fn get(
    state: &AppState,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<OptionView, ApiError> {
    check_account(account_id)?;
    check_reference(reference)?;
    vault_ready(state)?;
    let o = state.store.payment_option(merchant_id, account_id, reference).await?.ok_or(ApiError::NotFound)?;
    Ok(view(&o, state.now()))
}

/// Deletes an option: its sealed number and token are gone with the row.
pub async fn delete(state: &AppState, merchant_id: &str, account_id: &str, reference: &str) -> Result<(), ApiError> {
    check_account(account_id)?;
    check_reference(reference)?;
    vault_ready(state)?;
    if !state.store.delete_payment_option(merchant_id, account_id, reference).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(merchant = merchant_id, reference, "stored payment option deleted");
    Ok(())
}

/// Makes an option the account's default.
pub async fn set_default(
    state: &AppState,
    merchant_id: &str,
    account_id: &str,
    reference: &str,
) -> Result<(), ApiError> {
    check_account(account_id)?;
    check_reference(reference)?;
    vault_ready(state)?;
    if !state.store.set_default_option(merchant_id, account_id, reference).await? {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

/// A card stored: the option, and whether this request created it (`false`: the account held
/// the card already).
pub struct Stored {
    pub view: OptionView,
    pub created: bool,
}

/// Stores a card under an existing account: tokenized at the card provider, then sealed.
/// Returns the option (an already stored card's when the account holds it).
pub async fn store_card(
    state: &AppState,
    merchant_id: &str,
    account_id: &str,
    number: &CardNumber,
    brand: &str,
    expiry: Expiry,
    holder: Option<String>,
) -> Result<Stored, ApiError> {
    vault_ready(state)?;
    state.store.account(merchant_id, account_id).await?.ok_or(ApiError::NotFound)?;
    let provider = crate::engine::card_provider(state)?;
    let outcome = provider
        .tokenize(TokenizeRequest { number: number.clone(), expiry, holder })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let token = match outcome {
        TokenizeOutcome::Tokenized { token } => token,
        TokenizeOutcome::Refused { code } => {
            tracing::info!(merchant = merchant_id, code = %code, "the provider refused to tokenize a card");
            return Err(ApiError::invalid(
                Problem::new(ErrorCode::InvalidCardData).at("paymentOption.card.cardDetails.cardNumber"),
            ));
        }
        TokenizeOutcome::Unknown => return Err(ApiError::Unavailable("the card provider did not answer".into())),
    };
    let reference = crate::vault::new_reference().map_err(|e| ApiError::Internal(e.to_string()))?;
    let option = state
        .vault
        .seal_option(merchant_id, account_id, &reference, number, brand, expiry, &token, provider.name(), state.now())
        .map_err(|_| ApiError::VaultUnavailable)?;
    let stored = crate::vault::add(state.store.as_ref(), option).await?.ok_or(ApiError::NotFound)?;
    let created = stored == reference;
    tracing::info!(merchant = merchant_id, reference = %stored, created, "payment option stored");
    Ok(Stored { view: get(state, merchant_id, account_id, &stored).await?, created })
}

/// Store Payment Option (§3.13): an authenticated (3-D Secure Y or A) card.
pub async fn store_from_api(
    state: &AppState,
    merchant_id: &str,
    account_id: &str,
    body: &Value,
) -> Result<(OptionView, Vec<String>), ApiError> {
    check_account(account_id)?;
    let (y, m, _) = state.now().date();
    let valid = smartpay_domain::account::validate_store(body, (y, m)).map_err(|(violations, ignored)| {
        ApiError::Invalid { problems: violations.into_iter().map(Problem::from).collect(), ignored }
    })?;
    let stored =
        store_card(state, merchant_id, account_id, &valid.number, valid.brand, valid.expiry, valid.holder.clone())
            .await?;
    Ok((stored.view, valid.ignored))
}

/// Update Account (§3.14).
pub async fn update(
    state: &AppState,
    merchant_id: &str,
    account_id: &str,
    body: &Value,
) -> Result<Vec<String>, ApiError> {
    check_account(account_id)?;
    // Accounts are the vault's: they fail closed with it.
    vault_ready(state)?;
    let valid = smartpay_domain::account::validate_update(body).map_err(|(violations, ignored)| ApiError::Invalid {
        problems: violations.into_iter().map(Problem::from).collect(),
        ignored,
    })?;
    state
        .store
        .update_account(merchant_id, account_id, valid.billing_address, Some(valid.consumer), state.now())
        .await
        .map_err(|e| match e {
            smartpay_store::StoreError::NotFound => ApiError::NotFound,
            other => other.into(),
        })?;
    Ok(valid.ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32) -> Millis {
        Millis(smartpay_domain::time::days_from_civil(y, m, d) * 86_400_000)
    }

    #[test]
    fn a_card_expires_after_the_last_day_of_its_month_and_expires_soon_within_30_days() {
        assert_eq!(expiry_flags(3, 2027, at(2027, 3, 31)), (false, true));
        assert_eq!(expiry_flags(3, 2027, at(2027, 4, 1)), (true, false));
        assert_eq!(expiry_flags(3, 2027, at(2027, 3, 1)), (false, false), "31 days left");
        assert_eq!(expiry_flags(3, 2027, at(2027, 3, 2)), (false, true), "30 days left");
        assert_eq!(expiry_flags(12, 2027, at(2027, 12, 15)), (false, true), "across the year");
        assert_eq!(expiry_flags(1, 2030, at(2027, 3, 1)), (false, false));
    }
}
