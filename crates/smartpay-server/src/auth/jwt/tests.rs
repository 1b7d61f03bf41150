use super::*;

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn setup() -> (KeyPair, String) {
    let pair = KeyPair::generate().unwrap();
    let token = pair.sign(r#"{"sub":"c","exp":9999999999}"#);
    (pair, token)
}

fn verify(pair: &KeyPair, token: &str) -> Result<Verified, TokenError> {
    let vk = pair.verifying_key();
    let kid = pair.kid.clone();
    verify_es256(token, Some("at+jwt"), move |k| (k == kid).then_some(vk))
}

#[test]
fn a_token_we_signed_verifies() {
    let (pair, token) = setup();
    let v = verify(&pair, &token).unwrap();
    assert_eq!(v.kid, pair.kid);
    assert_eq!(str_claim(&v.claims, "sub"), Ok("c"));
}

#[test]
fn forged_and_altered_tokens_are_refused() {
    let (pair, token) = setup();
    let parts: Vec<&str> = token.split('.').collect();
    let kid = &pair.kid;
    let payload = parts[1];
    let sig = parts[2];
    let header = |h: &str| b64(h);
    let mut forged: Vec<(String, &str)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE", "HS256", "RS256", "ES384", "EdDSA"] {
        let h = header(&format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#));
        forged.push((format!("{h}.{payload}.{sig}"), "alg"));
        forged.push((format!("{h}.{payload}."), "alg, no signature"));
    }
    for extra in [
        r#""jku":"http://evil""#,
        r#""x5u":"http://evil""#,
        r#""jwk":{"kty":"EC"}"#,
        r#""x5c":["AAAA"]"#,
        r#""crit":["exp"]"#,
        r#""zip":"DEF""#,
    ] {
        let h = header(&format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}",{extra}}}"#));
        forged.push((format!("{h}.{payload}.{sig}"), "extra header member"));
    }
    for bad_kid in ["../../dev/null", "' OR 1=1 --", "unknown", ""] {
        let h = header(&format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{bad_kid}"}}"#));
        forged.push((format!("{h}.{payload}.{sig}"), "kid"));
    }
    for typ in ["JWT", "jwt", "at+jws", ""] {
        let h = header(&format!(r#"{{"alg":"ES256","typ":"{typ}","kid":"{kid}"}}"#));
        forged.push((format!("{h}.{payload}.{sig}"), "typ"));
    }
    let no_typ = header(&format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#));
    forged.push((format!("{no_typ}.{payload}.{sig}"), "missing typ"));
    let dup = header(&format!(r#"{{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"{kid}"}}"#));
    forged.push((format!("{dup}.{payload}.{sig}"), "duplicate header key"));
    let altered_payload = b64(r#"{"sub":"admin","exp":9999999999}"#);
    forged.push((format!("{}.{altered_payload}.{sig}", parts[0]), "altered payload"));
    let dup_claims = b64(r#"{"sub":"c","sub":"admin","exp":9999999999}"#);
    forged.push((format!("{}.{dup_claims}.{sig}", parts[0]), "duplicate claim"));
    forged.push((format!("{}.{}.", parts[0], parts[1]), "stripped signature"));
    forged.push((format!("{}.{}", parts[0], parts[1]), "two segments"));
    forged.push((format!("{token}.x"), "four segments (JWE-like)"));
    forged.push((format!("{}.{}.{}", parts[0], parts[1], &sig[..sig.len() - 2]), "truncated signature"));
    let mut flipped = sig.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    forged.push((format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(flipped).unwrap()), "flipped signature"));
    forged.push((format!("{}=.{}.{}", parts[0], parts[1], sig), "padding"));
    forged.push(("a".repeat(16 * 1024), "16 KB"));
    let other = KeyPair { kid: pair.kid.clone(), key: KeyPair::generate().unwrap().key };
    forged.push((other.sign(r#"{"sub":"c","exp":9999999999}"#), "another deployment's key with the same kid"));

    for (t, what) in forged {
        assert!(verify(&pair, &t).is_err(), "accepted: {what}");
    }
}

#[test]
fn times_are_checked_with_leeway() {
    let now = 1_000_000;
    let claims = |json: &str| smartpay_domain::json::parse(json.as_bytes()).unwrap();
    let leeway = 30;
    assert!(check_times(&claims(&format!(r#"{{"exp":{}}}"#, now - (leeway - 1))), now, leeway, None).is_ok());
    assert_eq!(
        check_times(&claims(&format!(r#"{{"exp":{}}}"#, now - (leeway + 1))), now, leeway, None),
        Err(TokenError::Expired)
    );
    assert_eq!(check_times(&claims(r#"{"iat":1}"#), now, leeway, None), Err(TokenError::Claim("exp")));
    assert_eq!(check_times(&claims(r#"{"exp":"soon"}"#), now, leeway, None), Err(TokenError::Claim("exp")));
    assert_eq!(
        check_times(&claims(&format!(r#"{{"exp":{},"nbf":{}}}"#, now + 100, now + leeway + 1)), now, leeway, None),
        Err(TokenError::NotYetValid)
    );
    assert!(
        check_times(&claims(&format!(r#"{{"exp":{},"nbf":{}}}"#, now + 100, now + leeway - 1)), now, leeway, None)
            .is_ok()
    );
    assert_eq!(
        check_times(
            &claims(&format!(r#"{{"exp":{},"iat":{}}}"#, now + 100, now + leeway + 1)),
            now,
            leeway,
            Some(3600)
        ),
        Err(TokenError::NotYetValid)
    );
    assert_eq!(
        check_times(&claims(&format!(r#"{{"exp":{},"iat":{}}}"#, now + 7200, now)), now, leeway, Some(3600)),
        Err(TokenError::Claim("exp"))
    );
    assert_eq!(
        check_times(&claims(&format!(r#"{{"exp":{}}}"#, now + 100)), now, leeway, Some(3600)),
        Err(TokenError::Claim("iat"))
    );
}

#[test]
fn jwks_round_trip() {
    let pair = KeyPair::generate().unwrap();
    let jwk = public_jwk(&pair.kid, &pair.verifying_key());
    let (kid, key) = verifying_key_from_jwk(&jwk).unwrap();
    assert_eq!(kid, pair.kid);
    assert_eq!(key, pair.verifying_key());
    assert!(jwk.get("d").is_none(), "no private part in a public JWK");
}

proptest::proptest! {
    #[test]
    fn never_panics_on_token_like_input(s in "[A-Za-z0-9_.=-]{0,300}") {
        let (pair, _) = setup();
        let _ = verify(&pair, &s);
    }
}
