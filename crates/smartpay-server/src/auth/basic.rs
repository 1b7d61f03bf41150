//! The credentials part of an `Authorization: Basic` header (RFC 7617 §2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Longest credentials part looked at.
const MAX_LEN: usize = 1024;

/// Decodes `base64(user-id ":" password)`: the user-id ends at the first colon, the password
/// may contain colons. `None` for anything malformed, including an empty password.
pub fn parse(credentials: &[u8]) -> Option<(String, zeroize::Zeroizing<String>)> {
    let credentials = trim(credentials);
    if credentials.is_empty() || credentials.len() > MAX_LEN {
        return None;
    }
    let decoded = zeroize::Zeroizing::new(STANDARD.decode(credentials).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    if user.is_empty() || password.is_empty() || text.chars().any(char::is_control) {
        return None;
    }
    Some((user.to_owned(), zeroize::Zeroizing::new(password.to_owned())))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| *c != b' ' && *c != b'\t').unwrap_or(b.len());
    let end = b.iter().rposition(|c| *c != b' ' && *c != b'\t').map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8]) -> Vec<u8> {
        STANDARD.encode(s).into_bytes()
    }

    #[test]
    fn user_id_ends_at_the_first_colon() {
        let (u, p) = parse(&enc(b"user:pa:ss")).unwrap();
        assert_eq!(u, "user");
        assert_eq!(p.as_str(), "pa:ss");
    }

    #[test]
    fn surrounding_whitespace_is_tolerated() {
        assert!(parse(format!("  {}  ", String::from_utf8(enc(b"u:p")).unwrap()).as_bytes()).is_some());
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let long = enc(&vec![b'a'; 2000]);
        for bad in [
            enc(b"nocolon"),
            enc(b":secret"),
            enc(b"user:"),
            b"!!!notbase64".to_vec(),
            enc(b"us\xffer:p"),
            enc(b"u:p\n"),
            Vec::new(),
            long,
        ] {
            assert!(parse(&bad).is_none(), "{:?}", String::from_utf8_lossy(&bad));
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
