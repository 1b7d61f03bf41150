//! G3: the KEK from a key file, an environment value, or two split-knowledge components.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use smartpay_vault::{Kek, KekSource, KeyError, VaultError, generate_components, load_kek, open, seal, write_key_file};

use crate::{aad, hex, ring};

const C1: [u8; 32] = [0x5a; 32];
const C2: [u8; 32] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x0f, 0x1e, 0x2d,
    0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
];

fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Writes `text` to `dir/name` with mode 0600.
fn key_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    write_key_file(&path, text).unwrap();
    path
}

fn components(dir: &Path) -> (PathBuf, PathBuf) {
    (key_file(dir, "c1", &hex(&C1)), key_file(dir, "c2", &URL_SAFE_NO_PAD.encode(C2)))
}

#[test]
fn both_components_give_the_known_combination() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = components(dir.path());
    let kek = load_kek(&KekSource::Components(p1, p2)).unwrap();
    let expected = Kek::from_bytes(&xor(&C1, &C2)).unwrap();
    assert_eq!(kek.id(), expected.id());
    // Same key, not only the same name: what one seals the other opens.
    let sealed = seal(&expected, &aad(0), b"pan").unwrap();
    assert_eq!(open(&ring(&kek), &aad(0), &sealed).unwrap().as_slice(), b"pan");
}

#[test]
fn swapped_components_still_work_because_xor_is_symmetric() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = components(dir.path());
    let forward = load_kek(&KekSource::Components(p1.clone(), p2.clone())).unwrap();
    let swapped = load_kek(&KekSource::Components(p2, p1)).unwrap();
    assert_eq!(forward.id(), swapped.id());
}

#[test]
fn either_component_alone_cannot_open_what_the_kek_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = components(dir.path());
    let kek = load_kek(&KekSource::Components(p1.clone(), p2.clone())).unwrap();
    let sealed = seal(&kek, &aad(0), b"pan").unwrap();
    for alone in [p1.clone(), p2.clone()] {
        // Loaded as if it were the whole key, a component is another key version...
        let k = load_kek(&KekSource::File(alone)).unwrap();
        assert_ne!(k.id(), kek.id());
        assert_eq!(open(&ring(&k), &aad(0), &sealed).unwrap_err(), VaultError::UnknownKey { kek_id: kek.id().into() });
        // ...and even relabelled as the real version it does not authenticate.
        let forged = smartpay_vault::Sealed { kek_id: k.id().into(), ..sealed.clone() };
        assert_eq!(open(&ring(&k), &aad(0), &forged).unwrap_err(), VaultError::Authentication);
    }
    // With the other component missing, nothing loads.
    let missing = dir.path().join("absent");
    assert!(matches!(load_kek(&KekSource::Components(p1, missing.clone())), Err(KeyError::Io { .. })));
    assert!(matches!(load_kek(&KekSource::Components(missing, p2)), Err(KeyError::Io { .. })));
}

#[test]
fn a_wrong_component_gives_another_key_that_the_expected_version_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = components(dir.path());
    let right = load_kek(&KekSource::Components(p1.clone(), p2)).unwrap();
    let mut wrong_bytes = C2;
    wrong_bytes[31] ^= 1;
    let wrong_path = key_file(dir.path(), "wrong", &hex(&wrong_bytes));
    let wrong = load_kek(&KekSource::Components(p1, wrong_path)).unwrap();
    assert_ne!(wrong.id(), right.id());
    assert!(matches!(wrong.check_id(right.id()), Err(KeyError::IdMismatch { .. })));
    let sealed = seal(&right, &aad(0), b"pan").unwrap();
    assert!(open(&ring(&wrong), &aad(0), &sealed).is_err());
}

#[test]
fn zero_and_equal_components_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = components(dir.path());
    let zero = key_file(dir.path(), "zero", &hex(&[0; 32]));
    assert!(matches!(load_kek(&KekSource::Components(zero.clone(), p2)), Err(KeyError::ZeroComponent { .. })));
    assert!(matches!(load_kek(&KekSource::Components(p1.clone(), zero)), Err(KeyError::ZeroComponent { .. })));
    // Equal components would XOR to an all-zero key; the same bytes in another encoding count.
    let same = key_file(dir.path(), "same", &URL_SAFE_NO_PAD.encode(C1));
    assert_eq!(load_kek(&KekSource::Components(p1.clone(), p1.clone())).unwrap_err(), KeyError::EqualComponents);
    assert_eq!(load_kek(&KekSource::Components(p1, same)).unwrap_err(), KeyError::EqualComponents);
    // (The separate all-zero-result check cannot be reached: XOR is zero only for equal inputs.)
}

#[test]
fn generated_components_combine_into_a_working_key() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = generate_components().unwrap();
    let kek = load_kek(&KekSource::Components(key_file(dir.path(), "a", &a), key_file(dir.path(), "b", &b))).unwrap();
    let sealed = seal(&kek, &aad(1), b"pan").unwrap();
    assert_eq!(open(&ring(&kek), &aad(1), &sealed).unwrap().as_slice(), b"pan");
}

#[test]
fn key_files_load_from_base64url_hex_and_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let expected = Kek::from_bytes(&C2).unwrap();
    let b64 = key_file(dir.path(), "b64", &URL_SAFE_NO_PAD.encode(C2));
    let hexed = key_file(dir.path(), "hex", &hex(&C2).to_uppercase());
    let raw = dir.path().join("raw");
    {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        o.mode(0o400);
        o.open(&raw).unwrap().write_all(&C2).unwrap();
    }
    for p in [b64, hexed, raw] {
        assert_eq!(load_kek(&KekSource::File(p.clone())).unwrap().id(), expected.id(), "{}", p.display());
    }
}

#[test]
fn environment_values_load_from_base64url_and_hex() {
    let expected = Kek::from_bytes(&C2).unwrap();
    for value in [URL_SAFE_NO_PAD.encode(C2), hex(&C2), format!("{}\n", hex(&C2))] {
        assert_eq!(load_kek(&KekSource::Env(value.into())).unwrap().id(), expected.id());
    }
}

#[test]
fn malformed_key_material_is_refused_without_echoing_it() {
    let short = URL_SAFE_NO_PAD.encode(&C2[..31]);
    let long = hex(&[0x42; 33]);
    let not_hex = format!("{}zz", &hex(&C2)[..62]);
    for value in [short, long, not_hex, String::new(), "   ".into()] {
        let err = load_kek(&KekSource::Env(value.clone().into())).unwrap_err();
        assert!(matches!(err, KeyError::Encoding { .. }), "{err:?}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(value.trim().is_empty() || !shown.contains(value.trim()), "{shown}");
        }
    }
    assert_eq!(load_kek(&KekSource::Env(hex(&[0; 32]).into())).unwrap_err(), KeyError::ZeroKey);
    let dir = tempfile::tempdir().unwrap();
    let big = key_file(dir.path(), "big", &"A".repeat(5000));
    assert!(matches!(load_kek(&KekSource::File(big)), Err(KeyError::Encoding { .. })));
}

#[cfg(unix)]
#[test]
fn key_files_readable_by_group_or_others_are_refused_naming_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = components(dir.path());
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
        std::fs::set_permissions(&p1, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = load_kek(&KekSource::File(p1.clone())).unwrap_err();
        assert_eq!(err, KeyError::Permissions { path: p1.display().to_string(), mode });
        assert!(err.to_string().contains(&format!("{mode:04o}")), "{err}");
        let err = load_kek(&KekSource::Components(p2.clone(), p1.clone())).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { .. }), "components are checked too: {err}");
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&p1, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(load_kek(&KekSource::File(p1.clone())).is_ok(), "{mode:o}");
    }
}

#[cfg(unix)]
#[test]
fn written_key_files_are_owner_only_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = key_file(dir.path(), "k", "text");
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(matches!(write_key_file(&p, "other"), Err(KeyError::Io { .. })));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "text\n");
}
