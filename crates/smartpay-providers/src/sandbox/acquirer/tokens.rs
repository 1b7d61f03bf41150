//! Stored cards at the acquirer: `POST /v1/tokens` seals a card into a token and authorizations
//! open it again. Tokens are stateless, so they survive the acquirer's restarts as long as
//! [`super::AcquirerConfig::token_key`] stays the same:
//!
//! `tok_` + base64url(nonce(12) ‖ AES-256-GCM(token_key, card, aad = [`TOKEN_AAD`]))
//!
//! where the sealed card is a fixed 23 bytes — the PAN's length, the PAN's digits padded with
//! zeros to 19, the expiry month and the expiry year (big-endian) — so every token has the same
//! length and says nothing about the card. A token that does not open (forged, altered, sealed
//! under another key) is refused with `invalid_token`. Nothing about a card is kept or logged.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use smartpay_domain::card::{CardNumber, Expiry};
use zeroize::Zeroizing;

use super::super::wire;
use super::{Shared, bad, rejected};
use crate::service::MAX_KEY_LEN;

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "tok_";
/// Associated data of every sealed card: a token opens only as a sandbox card token.
pub const TOKEN_AAD: &[u8] = b"smartpay/sandbox-acquirer/card-token/v1";
/// Longest PAN (digits).
const PAN_MAX: usize = 19;
/// Bytes of a sealed card before encryption: PAN length, padded PAN, month, year.
const CARD_LEN: usize = 1 + PAN_MAX + 1 + 2;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes of a token after base64url decoding.
const TOKEN_BYTES: usize = NONCE_LEN + CARD_LEN + TAG_LEN;
/// Longest token string considered at all (the real ones are 4 + 68 characters).
const MAX_TOKEN_LEN: usize = 128;

/// The card a token stands for.
pub struct TokenCard {
    pub number: CardNumber,
    pub expiry: Expiry,
}

/// Seals and opens tokens. Its key never leaves it.
pub struct TokenKey(Aes256Gcm);

impl TokenKey {
    pub fn new(key: &[u8; 32]) -> Self {
        TokenKey(Aes256Gcm::new(key.into()))
    }

    /// The token of a card; `None` only when the random source fails.
    pub fn seal(&self, number: &CardNumber, expiry: Expiry) -> Option<String> {
        let pan = number.expose().as_bytes();
        let mut card = Zeroizing::new([0u8; CARD_LEN]);
        card[0] = u8::try_from(pan.len()).ok().filter(|n| usize::from(*n) <= PAN_MAX)?;
        card[1..=pan.len()].copy_from_slice(pan);
        card[1 + PAN_MAX] = expiry.month;
        card[2 + PAN_MAX..].copy_from_slice(&expiry.year.to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).ok()?;
        let sealed = self.0.encrypt(&Nonce::from(nonce), Payload { msg: card.as_slice(), aad: TOKEN_AAD }).ok()?;
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Some(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The card sealed in `token`; `None` when it is not a token this key made.
    pub fn open(&self, token: &str) -> Option<TokenCard> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token.strip_prefix(TOKEN_PREFIX)?).ok()?;
        if bytes.len() != TOKEN_BYTES {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let card = Zeroizing::new(self.0.decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad: TOKEN_AAD }).ok()?);
        let len = usize::from(*card.first()?);
        let (pan, padding) = card.get(1..=PAN_MAX)?.split_at_checked(len)?;
        if padding.iter().any(|b| *b != 0) {
            return None;
        }
        let pan = Zeroizing::new(String::from_utf8(pan.to_vec()).ok()?);
        let (number, _) = CardNumber::parse(&pan).ok()?;
        let month = *card.get(1 + PAN_MAX)?;
        let year = u16::from_be_bytes(card.get(2 + PAN_MAX..)?.try_into().ok()?);
        (1..=12).contains(&month).then_some(TokenCard { number, expiry: Expiry { month, year } })
    }
}

/// The expiry of a request, which must be a real month not in the past.
fn current_expiry(month: u8, year: u16) -> Option<Expiry> {
    let (y, m, _) = smartpay_domain::Millis::now().date();
    Expiry::parse(&format!("{month:02}/{year:04}"), (y, m)).ok()
}

/// Checks a card to store; `Err` is the error code.
fn check(req: &wire::TokenRequest) -> Result<(CardNumber, smartpay_domain::card::Brand, Expiry), &'static str> {
    if req.pan.len() > 32 {
        return Err("invalid_pan");
    }
    let Ok((number, brand)) = CardNumber::parse(&req.pan) else { return Err("invalid_pan") };
    let Some(expiry) = current_expiry(req.expiry_month, req.expiry_year) else { return Err("invalid_expiry") };
    if req.holder.as_ref().is_some_and(|h| h.len() > MAX_KEY_LEN) {
        return Err("invalid_holder");
    }
    Ok((number, brand, expiry))
}

/// `POST /v1/tokens` → 201 with the token, the brand, the last 4 digits and the expiry.
pub(super) async fn tokenize(
    State(acq): State<Shared>,
    body: Result<Json<wire::TokenRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => return rejected(&e),
    };
    let (number, brand, expiry) = match check(&req) {
        Ok(c) => c,
        Err(code) => return bad(code),
    };
    let Some(token) = acq.tokens.seal(&number, expiry) else {
        tracing::error!("sandbox acquirer: the random source failed while making a token");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let answer = wire::TokenResponse {
        token,
        brand: brand.code().to_owned(),
        last4: number.last4().to_owned(),
        expiry_month: expiry.month,
        expiry_year: expiry.year,
    };
    (StatusCode::CREATED, Json(answer)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(n: &str) -> CardNumber {
        CardNumber::parse(n).unwrap().0
    }

    #[test]
    fn a_token_opens_to_its_card_under_its_key_only() {
        let key = TokenKey::new(&[7; 32]);
        let expiry = Expiry { month: 3, year: 2031 };
        for n in ["4111111111111111", "378282246310005", "4000000000000259", "6011000990139424", "4222222222222"] {
            let token = key.seal(&card(n), expiry).unwrap();
            assert_eq!(token.len(), 4 + 68, "every token has one length: {token}");
            let opened = key.open(&token).unwrap();
            assert_eq!((opened.number.expose(), opened.expiry), (n, expiry));
            assert!(TokenKey::new(&[8; 32]).open(&token).is_none(), "another key opens nothing");
        }
    }

    #[test]
    fn every_altered_token_is_refused() {
        let key = TokenKey::new(&[7; 32]);
        let token = key.seal(&card("4111111111111111"), Expiry { month: 3, year: 2031 }).unwrap();
        for i in TOKEN_PREFIX.len()..token.len() {
            let mut b = token.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(b).unwrap();
            assert!(key.open(&altered).is_none(), "position {i}");
        }
        assert!(key.open(&token[TOKEN_PREFIX.len()..]).is_none(), "without its prefix");
        assert!(key.open(&format!("{token}A")).is_none(), "longer");
        assert!(key.open(&token[..token.len() - 1]).is_none(), "shorter");
    }
}
