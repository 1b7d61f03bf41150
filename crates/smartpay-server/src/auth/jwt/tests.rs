use super::*;

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn setup() -> (KeyPair, String) {
    let pair = KeyPair::generate().unwrap();
    let token = pair.sign(r#"{"sub":"c","exp":9999999999}"#);
    (pair, token)
}

/// A token with exactly this header and these claims, correctly signed by `pair`: whatever is
/// wrong with it, its signature is not.
fn signed_raw(pair: &KeyPair, header_json: &str, claims_json: &str) -> String {
    let signing_input = format!("{}.{}", b64(header_json), b64(claims_json));
    let sig: Signature = pair.key.sign(signing_input.as_bytes());
    let sig = sig.normalize_s().unwrap_or(sig);
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// The same token with its signature (r, s) replaced by (r, n − s), which verifies as well.
fn with_high_s(token: &str) -> String {
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    let (r, s) = sig.split_scalars();
    let flipped = Signature::from_scalars(r.to_bytes(), (-s).to_bytes()).unwrap();
    assert!(flipped.normalize_s().is_some(), "n − s of a low s is high");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(flipped.to_bytes()))
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
    let altered_payload = b64(r#"{"sub":"admin","exp":9999999999}"#);
    forged.push((format!("{}.{altered_payload}.{sig}", parts[0]), "altered payload"));
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
fn a_duplicate_header_member_is_refused_even_when_correctly_signed() {
    let (pair, _) = setup();
    let kid = &pair.kid;
    let claims = r#"{"sub":"c","exp":9999999999}"#;
    // Control: the same header without the repetition verifies, so only the duplicate is wrong.
    let single = signed_raw(&pair, &format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}"}}"#), claims);
    assert!(verify(&pair, &single).is_ok());
    let dup = signed_raw(&pair, &format!(r#"{{"alg":"ES256","alg":"ES256","typ":"at+jwt","kid":"{kid}"}}"#), claims);
    assert_eq!(verify(&pair, &dup).unwrap_err(), TokenError::Malformed);
}

#[test]
fn a_duplicate_claim_is_refused_even_when_correctly_signed() {
    let (pair, token) = setup();
    let header = token.split('.').next().unwrap();
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let single = signed_raw(&pair, &header, r#"{"sub":"admin","exp":9999999999}"#);
    assert_eq!(str_claim(&verify(&pair, &single).unwrap().claims, "sub"), Ok("admin"));
    let dup = signed_raw(&pair, &header, r#"{"sub":"c","sub":"admin","exp":9999999999}"#);
    assert_eq!(verify(&pair, &dup).unwrap_err(), TokenError::Malformed);
}

#[test]
fn signatures_are_low_s_and_their_high_s_twin_is_refused() {
    for _ in 0..16 {
        // Half of raw P-256 signatures are high-S: sixteen tokens exercise both cases of signing.
        let (pair, token) = setup();
        let sig = token.rsplit('.').next().unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        assert!(sig.normalize_s().is_none(), "signed with a high s");
        assert!(verify(&pair, &token).is_ok());
        let twin = with_high_s(&token);
        let (input, twin_sig) = twin.rsplit_once('.').unwrap();
        let twin_sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(twin_sig).unwrap()).unwrap();
        assert!(pair.verifying_key().verify(input.as_bytes(), &twin_sig).is_ok(), "the twin is a valid signature");
        assert_eq!(verify(&pair, &twin).unwrap_err(), TokenError::Signature);
    }
}

fn identity(pair: &KeyPair, issuer: Option<&str>, audience: Option<&str>) -> IdentityVerifier {
    let jwks = serde_json::json!({"keys": [public_jwk(&pair.kid, &pair.verifying_key())]}).to_string();
    IdentityVerifier::new(Some(&jwks), issuer.map(str::to_owned), audience.map(str::to_owned))
}

#[test]
fn identity_tokens_must_carry_the_registered_issuer_and_audience() {
    let pair = KeyPair::generate().unwrap();
    let now = 1_000_000;
    let token = |claims: serde_json::Value| pair.sign(&claims.to_string());
    let exp = now + 60;
    let strict = identity(&pair, Some("https://id.shop.example"), Some("smartpay"));
    let good = token(serde_json::json!({"sub": "u1", "exp": exp, "iss": "https://id.shop.example", "aud": "smartpay"}));
    assert_eq!(strict.subject(&good, now, 30), Ok("u1".to_owned()));
    let in_array =
        token(serde_json::json!({"sub": "u1", "exp": exp, "iss": "https://id.shop.example", "aud": ["x", "smartpay"]}));
    assert_eq!(strict.subject(&in_array, now, 30), Ok("u1".to_owned()));
    let refused = [
        (serde_json::json!({"sub": "u1", "exp": exp, "iss": "https://evil.example", "aud": "smartpay"}), "iss"),
        (serde_json::json!({"sub": "u1", "exp": exp, "iss": "https://id.shop.example/", "aud": "smartpay"}), "iss"),
        (serde_json::json!({"sub": "u1", "exp": exp, "aud": "smartpay"}), "iss"),
        (serde_json::json!({"sub": "u1", "exp": exp, "iss": "https://id.shop.example", "aud": "other"}), "aud"),
        (serde_json::json!({"sub": "u1", "exp": exp, "iss": "https://id.shop.example", "aud": ["other"]}), "aud"),
        (serde_json::json!({"sub": "u1", "exp": exp, "iss": "https://id.shop.example"}), "aud"),
    ];
    for (claims, claim) in refused {
        assert_eq!(strict.subject(&token(claims.clone()), now, 30), Err(TokenError::Claim(claim)), "{claims}");
    }
    let bare = token(serde_json::json!({"sub": "u1", "exp": exp}));
    assert_eq!(identity(&pair, None, None).subject(&bare, now, 30), Ok("u1".to_owned()), "nothing registered");
    assert_eq!(identity(&pair, None, Some("smartpay")).subject(&good, now, 30), Ok("u1".to_owned()));
    assert_eq!(identity(&pair, Some("https://id.shop.example"), None).subject(&good, now, 30), Ok("u1".to_owned()));
    assert_eq!(strict.subject(&with_high_s(&good), now, 30), Err(TokenError::Signature));
}

#[test]
fn an_identity_issuer_without_usable_keys_has_none() {
    assert!(!IdentityVerifier::new(None, None, None).has_keys());
    assert!(!IdentityVerifier::new(Some("not json"), None, None).has_keys());
    assert!(!IdentityVerifier::new(Some(r#"{"keys":[{"kty":"RSA","kid":"r"}]}"#), None, None).has_keys());
    assert!(identity(&KeyPair::generate().unwrap(), None, None).has_keys());
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
