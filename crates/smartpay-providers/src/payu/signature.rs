//! The `OpenPayu-Signature` header of PayU's notifications:
//! `t=<unix seconds>;signature=<hex HMAC-SHA256(secret, "<t>.<body>")>;algorithm=HMAC-SHA256`.
//! The fake signs with [`header`]; the connector checks with [`verify`]: the MAC is compared in
//! constant time before anything of the body is read, and a `t` more than [`TOLERANCE_SECS`] from
//! now is refused so a captured notification cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use smartpay_domain::Millis;
use subtle::ConstantTimeEq;

use crate::NoticeError;

/// The header's name.
pub const HEADER: &str = "OpenPayu-Signature";
/// How far `t` may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;
/// Longest header parsed.
const MAX_HEADER_LEN: usize = 512;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], t: i64, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut m) = HmacSha256::new_from_slice(secret) else { return [0; 32] };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(D[usize::from(b >> 4)]));
        s.push(char::from(D[usize::from(b & 15)]));
    }
    s
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The header value signing `body` at `t` (unix seconds).
pub fn header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t};signature={};algorithm=HMAC-SHA256", hex(&mac(secret.as_bytes(), t, body)))
}

/// The parts of a header, syntax checked.
struct Parsed {
    t: i64,
    signature: [u8; 32],
}

fn parse(h: &str) -> Result<Parsed, NoticeError> {
    if h.len() > MAX_HEADER_LEN {
        return Err(NoticeError::Malformed);
    }
    let (mut t, mut signature, mut algorithm) = (None, None, None);
    for part in h.split(';') {
        let Some((k, v)) = part.trim().split_once('=') else { return Err(NoticeError::Malformed) };
        let slot = match k.trim() {
            "t" => &mut t,
            "signature" => &mut signature,
            "algorithm" => &mut algorithm,
            _ => continue,
        };
        if slot.replace(v.trim()).is_some() {
            return Err(NoticeError::Malformed);
        }
    }
    let t = t.filter(|t| !t.is_empty() && t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()));
    let t = t.and_then(|t| t.parse::<i64>().ok()).ok_or(NoticeError::Malformed)?;
    let signature = signature.and_then(unhex32).ok_or(NoticeError::Malformed)?;
    if algorithm != Some("HMAC-SHA256") {
        return Err(NoticeError::Malformed);
    }
    Ok(Parsed { t, signature })
}

/// Checks `header` against `body`: `Unsigned` without one, `Malformed` when it cannot be read,
/// `BadSignature` when the MAC is wrong or `t` is more than [`TOLERANCE_SECS`] from `now`.
pub fn verify(secret: &str, header: Option<&str>, body: &[u8], now: Millis) -> Result<(), NoticeError> {
    let h = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(NoticeError::Unsigned)?;
    let p = parse(h)?;
    let expected = mac(secret.as_bytes(), p.t, body);
    if !bool::from(expected.ct_eq(&p.signature)) {
        return Err(NoticeError::BadSignature);
    }
    let age = now.0.div_euclid(1000).saturating_sub(p.t);
    if age.abs() > TOLERANCE_SECS {
        return Err(NoticeError::BadSignature);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = Millis(1_700_000_000_123);

    #[test]
    fn a_header_verifies_against_its_body_and_secret_only() {
        let h = header("secret-0123456789", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000;signature=") && h.ends_with(";algorithm=HMAC-SHA256"), "{h}");
        assert_eq!(verify("secret-0123456789", Some(&h), b"{\"a\":1}", NOW), Ok(()));
        assert_eq!(verify("secret-0123456789", Some(&h), b"{\"a\":2}", NOW), Err(NoticeError::BadSignature));
        assert_eq!(verify("other-secret-0123", Some(&h), b"{\"a\":1}", NOW), Err(NoticeError::BadSignature));
        let upper = h.replace(&h[23..87], &h[23..87].to_uppercase());
        assert_eq!(verify("secret-0123456789", Some(&upper), b"{\"a\":1}", NOW), Ok(()), "hex in either case");
    }

    #[test]
    fn a_signature_outside_the_tolerance_is_refused() {
        for (t, ok) in [(1_700_000_000 - 300, true), (1_700_000_000 - 301, false), (1_700_000_000 + 301, false)] {
            let h = header("s", t, b"x");
            assert_eq!(verify("s", Some(&h), b"x", NOW).is_ok(), ok, "t={t}");
        }
    }

    #[test]
    fn unreadable_headers_are_malformed_and_missing_ones_unsigned() {
        assert_eq!(verify("s", None, b"x", NOW), Err(NoticeError::Unsigned));
        assert_eq!(verify("s", Some("  "), b"x", NOW), Err(NoticeError::Unsigned));
        let good = header("s", 1_700_000_000, b"x");
        let sig = &good[good.find("signature=").unwrap() + 10..good.find(";algorithm").unwrap()];
        for h in [
            "garbage".to_owned(),
            format!("t=;signature={sig};algorithm=HMAC-SHA256"),
            format!("t=-5;signature={sig};algorithm=HMAC-SHA256"),
            format!("t=1700000000;signature={};algorithm=HMAC-SHA256", &sig[1..]),
            format!("t=1700000000;signature={sig};algorithm=MD5"),
            format!("t=1700000000;signature={sig}"),
            format!("t=1700000000;t=1700000000;signature={sig};algorithm=HMAC-SHA256"),
            format!("t=1700000000;signature={sig};algorithm=HMAC-SHA256;{}", "x=y;".repeat(200)),
        ] {
            assert_eq!(verify("s", Some(&h), b"x", NOW), Err(NoticeError::Malformed), "{h}");
        }
        let spaced = format!("t=1700000000; signature={sig}; algorithm=HMAC-SHA256; sender=checkout");
        assert_eq!(verify("s", Some(&spaced), b"x", NOW), Ok(()));
    }
}
