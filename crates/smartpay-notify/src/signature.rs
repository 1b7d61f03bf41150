//! `SmartPay-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one `v1`
//! per active signing secret, and the reference verifier merchants use.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

type HmacSha256 = Hmac<Sha256>;

/// Longest header [`verify`] reads; anything longer is [`VerifyError::Malformed`].
const MAX_HEADER_LEN: usize = 4096;
/// Length of one `v1` value: a hex SHA-256 MAC.
const V1_HEX_LEN: usize = 64;

/// Why a signature was not accepted. No variant carries the header, body or secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not `t=<integer>,v1=<64 hex>[,v1=…]` (or too long).
    #[error("the signature header is malformed")]
    Malformed,
    /// No `v1` matches any of the secrets over this body.
    #[error("no signature matches")]
    NoMatch,
    /// A signature matches but `t` is further from now than the tolerance.
    #[error("the signature is too old or from the future")]
    Stale,
}

impl VerifyError {
    /// A stable `snake_case` code.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::NoMatch => "no_match",
            VerifyError::Stale => "stale",
        }
    }
}

/// The MAC of `"<t>.<body>"` under `secret`.
fn mac(secret: &[u8], t: i64, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this never fails; an empty key is the fallback.
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != V1_HEX_LEN {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// `t=<t>,v1=<hex>` with one `v1` per secret, in the order given (several during rotation).
pub fn signature_header(secrets: &[&[u8]], t: i64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex(&mac(secret, t, body)));
    }
    header
}

/// The parts of a header: its timestamp and every `v1`.
fn parse(header: &str) -> Result<(i64, Vec<[u8; 32]>), VerifyError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(VerifyError::Malformed);
    }
    let mut t = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let (key, value) = item.trim().split_once('=').ok_or(VerifyError::Malformed)?;
        match key {
            "t" if t.is_none() => t = Some(value.parse::<i64>().map_err(|_| VerifyError::Malformed)?),
            "t" => return Err(VerifyError::Malformed),
            "v1" => v1.push(unhex(value).ok_or(VerifyError::Malformed)?),
            // Other schemes (a future v2) are ignored.
            _ => {}
        }
    }
    match t {
        Some(t) if !v1.is_empty() => Ok((t, v1)),
        _ => Err(VerifyError::Malformed),
    }
}

/// The reference verifier: Ok when some `v1` of `header` matches some of `secrets` over `body`
/// (compared in constant time) and `|now_unix - t| <= tolerance_s`.
pub fn verify(
    header: &str,
    body: &[u8],
    secrets: &[&[u8]],
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let (t, candidates) = parse(header)?;
    let mut matched = Choice::from(0);
    for secret in secrets {
        let expected = mac(secret, t, body);
        for candidate in &candidates {
            matched |= expected.ct_eq(candidate);
        }
    }
    if !bool::from(matched) {
        return Err(VerifyError::NoMatch);
    }
    if now_unix.abs_diff(t) > tolerance_s.max(0).unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn header_matches_an_independently_computed_hmac() {
        // Python: hmac.new(b"key", b'1700000000.{"id":"e1"}', hashlib.sha256).hexdigest()
        let header = signature_header(&[b"key"], NOW, br#"{"id":"e1"}"#);
        assert_eq!(header, "t=1700000000,v1=bef8ad98fc8bc281e228c29d99d0b38086051703dbf3bbb8b3fee5b801ad1976");
        assert_eq!(signature_header(&[], NOW, b"x"), "t=1700000000");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn verify_accepts_its_own_signature_and_rejects_changes() {
        let body = br#"{"id":"e1"}"#;
        let header = signature_header(&[b"s1"], NOW, body);
        assert_eq!(verify(&header, body, &[b"s1"], NOW, 300), Ok(()));
        assert_eq!(verify(&header, br#"{"id":"e2"}"#, &[b"s1"], NOW, 300), Err(VerifyError::NoMatch));
        assert_eq!(verify(&header, body, &[b"s2"], NOW, 300), Err(VerifyError::NoMatch));
        assert_eq!(verify(&header, body, &[], NOW, 300), Err(VerifyError::NoMatch));
        // Moving t breaks the MAC, since t is signed.
        let moved = header.replacen(&format!("t={NOW}"), &format!("t={}", NOW + 1), 1);
        assert_eq!(verify(&moved, body, &[b"s1"], NOW, 300), Err(VerifyError::NoMatch));
    }

    #[test]
    fn tolerance_is_inclusive_both_ways() {
        let body = b"x";
        let header = signature_header(&[b"s"], NOW, body);
        assert_eq!(verify(&header, body, &[b"s"], NOW + 300, 300), Ok(()));
        assert_eq!(verify(&header, body, &[b"s"], NOW - 300, 300), Ok(()));
        assert_eq!(verify(&header, body, &[b"s"], NOW + 301, 300), Err(VerifyError::Stale));
        assert_eq!(verify(&header, body, &[b"s"], NOW - 301, 300), Err(VerifyError::Stale));
    }

    #[test]
    fn rotation_carries_one_v1_per_secret_in_order() {
        let body = b"payload";
        let header = signature_header(&[b"old", b"new"], NOW, body);
        let parts: Vec<&str> = header.split(',').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], format!("v1={}", hex(&mac(b"old", NOW, body))));
        assert_eq!(parts[2], format!("v1={}", hex(&mac(b"new", NOW, body))));
        assert_eq!(verify(&header, body, &[b"old"], NOW, 300), Ok(()));
        assert_eq!(verify(&header, body, &[b"new"], NOW, 300), Ok(()));
        assert_eq!(verify(&header, body, &[b"other", b"new"], NOW, 300), Ok(()));
    }

    #[test]
    fn malformed_headers() {
        let good = hex(&mac(b"s", NOW, b"b"));
        for h in [
            String::new(),
            "garbage".to_string(),
            format!("v1={good}"),
            format!("t={NOW}"),
            format!("t=abc,v1={good}"),
            format!("t={NOW},t={NOW},v1={good}"),
            format!("t={NOW},v1={}", &good[..63]),
            format!("t={NOW},v1={}g", &good[..63]),
            format!("t={NOW},v1={good},{}", "x".repeat(MAX_HEADER_LEN)),
        ] {
            assert_eq!(verify(&h, b"b", &[b"s"], NOW, 300), Err(VerifyError::Malformed), "{h}");
        }
        // Spaces after commas and unknown schemes are tolerated.
        assert_eq!(verify(&format!("t={NOW}, v0=zz, v1={good}"), b"b", &[b"s"], NOW, 300), Ok(()));
        assert_eq!(VerifyError::NoMatch.as_str(), "no_match");
    }
}
