//! H2: `Debug` of every key and secret type shows no key bytes and no plaintext.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use smartpay_vault::{FingerprintKey, Kek, KekSource, KeyRing, generate_key, load_kek, seal};

use crate::{aad, hex};

/// A key whose bytes are easy to spot in any encoding.
const CANARY: &[u8; 32] = b"CANARY-KEY-0123456789-abcdefghij";
const CANARY_PAN: &str = "4000000000009995";

/// Every form the key bytes could leak in.
fn leaks(key: &[u8]) -> Vec<String> {
    vec![
        String::from_utf8_lossy(key).into_owned(),
        "CANARY".into(),
        hex(key),
        hex(key).to_uppercase(),
        URL_SAFE_NO_PAD.encode(key),
        STANDARD.encode(key),
        format!("{:?}", &key[..8]).trim_end_matches(']').to_owned(),
        format!("{:?}", &key[8..16]).trim_start_matches('[').trim_end_matches(']').to_owned(),
    ]
}

fn assert_clean(shown: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!shown.contains(s.as_str()), "{shown:?} leaks {s:?}");
    }
}

#[test]
fn key_types_print_redacted() {
    let kek = Kek::from_bytes(CANARY).unwrap();
    let fp = FingerprintKey::from_bytes(CANARY).unwrap();
    let ring = KeyRing::rotating(kek.clone(), Kek::from_bytes(&[0x42; 32]).unwrap());
    let mut forbidden = leaks(CANARY);
    forbidden.extend(leaks(&[0x42; 32]).into_iter().skip(2));
    for shown in [format!("{kek:?}"), format!("{kek:#?}"), format!("{fp:?}"), format!("{ring:?}"), format!("{ring:#?}")]
    {
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_clean(&shown, &forbidden);
    }
    assert!(format!("{kek:?}").contains(kek.id()), "the key version is shown");
}

#[test]
fn sealed_records_print_neither_plaintext_nor_key_material() {
    let kek = Kek::from_bytes(CANARY).unwrap();
    let sealed = seal(&kek, &aad(0), CANARY_PAN.as_bytes()).unwrap();
    let shown = format!("{sealed:?}");
    let mut forbidden = leaks(CANARY);
    forbidden.extend([
        CANARY_PAN.into(),
        hex(CANARY_PAN.as_bytes()),
        hex(&sealed.wrapped_dek),
        hex(&sealed.ciphertext[..8]),
        format!("{:?}", &sealed.wrapped_dek[..4]).trim_end_matches(']').to_owned(),
        format!("{:?}", &sealed.ciphertext[..4]).trim_end_matches(']').to_owned(),
    ]);
    assert_clean(&shown, &forbidden);
    assert!(shown.contains(&sealed.kek_id));
}

#[test]
fn an_environment_key_source_prints_redacted() {
    let value = generate_key().unwrap();
    let src = KekSource::Env(value.to_string().into());
    let shown = format!("{src:?}");
    assert_eq!(shown, "Env(<redacted>)");
    assert!(load_kek(&src).is_ok());
}
