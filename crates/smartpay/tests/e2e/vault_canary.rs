//! G1/G8: canary card numbers stored in the vault through the account API and the widget, paid
//! with, and re-encrypted by a DEK rotation, never appear in the SQLite main, `-wal` and `-shm`
//! files, the server's and the CLI's output, or any response body, in any common encoding; the
//! canary CVC used when storing a card appears in none of the database files and logs.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use super::vault_rig::*;
use super::*;

/// The CVC canary: paired with a unique AMEX number, used only when storing that card.
const CVC: &str = "7331";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn utf16(text: &str, little_endian: bool) -> Vec<u8> {
    text.encode_utf16().flat_map(|u| if little_endian { u.to_le_bytes() } else { u.to_be_bytes() }).collect()
}

/// `pan` in groups (4-4-4-4…, and AMEX's 4-6-5) joined by `sep`.
fn grouped(pan: &str, sep: &str) -> Vec<String> {
    let fours: Vec<&str> = pan.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let mut out = vec![fours.join(sep)];
    if pan.len() == 15 {
        out.push([&pan[..4], &pan[4..10], &pan[10..]].join(sep));
    }
    out
}

/// Every form a card number is searched in: raw, spaced, dashed, base64 (standard and URL-safe,
/// padded or not), hex (both cases), URL-encoded, JSON-escaped, UTF-16 (LE and BE), and its
/// unkeyed SHA-256 (raw and hex).
fn pan_forms(pan: &str) -> Vec<(String, Vec<u8>)> {
    let mut texts: Vec<(String, String)> = vec![("raw".into(), pan.into())];
    for g in grouped(pan, " ") {
        texts.push(("spaced".into(), g.clone()));
        texts.push(("url-encoded spaced".into(), g.replace(' ', "%20")));
        texts.push(("form-encoded spaced".into(), g.replace(' ', "+")));
        texts.push(("JSON-escaped spaced".into(), g.replace(' ', "\\u0020")));
    }
    for g in grouped(pan, "-") {
        texts.push(("dashed".into(), g));
    }
    for (name, engine) in [("base64", &STANDARD), ("base64 no pad", &STANDARD_NO_PAD)] {
        texts.push((name.into(), engine.encode(pan)));
    }
    for (name, engine) in [("base64url", &URL_SAFE), ("base64url no pad", &URL_SAFE_NO_PAD)] {
        texts.push((name.into(), engine.encode(pan)));
    }
    texts.push(("hex".into(), hex(pan.as_bytes())));
    texts.push(("HEX".into(), hex(pan.as_bytes()).to_uppercase()));
    texts.push(("url-encoded".into(), pan.bytes().map(|b| format!("%{b:02X}")).collect()));
    texts.push(("JSON-escaped".into(), pan.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()));
    let digest = smartpay_server::secrets::sha256(&[pan.as_bytes()]);
    texts.push(("SHA-256 hex".into(), hex(&digest)));
    let mut forms: Vec<(String, Vec<u8>)> = texts.into_iter().map(|(n, t)| (n, t.into_bytes())).collect();
    forms.push(("UTF-16LE".into(), utf16(pan, true)));
    forms.push(("UTF-16BE".into(), utf16(pan, false)));
    forms.push(("SHA-256 raw".into(), digest.to_vec()));
    forms
}

/// The CVC canary's forms. The bare four digits occur by chance in ids and timestamps, so it is
/// searched as a delimited value and in encodings long enough to be unambiguous.
fn cvc_forms() -> Vec<(String, Vec<u8>)> {
    let texts: Vec<(String, String)> = vec![
        ("JSON string".into(), format!("\"{CVC}\"")),
        ("JSON number".into(), format!(":{CVC},")),
        ("JSON number at end".into(), format!(":{CVC}}}")),
        ("key=value".into(), format!("={CVC}")),
        ("quoted".into(), format!("'{CVC}'")),
        ("base64".into(), STANDARD.encode(CVC)),
        ("hex".into(), hex(CVC.as_bytes())),
        ("JSON-escaped".into(), CVC.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()),
        ("the request's field".into(), "\"cvc\"".into()),
    ];
    let mut forms: Vec<(String, Vec<u8>)> = texts.into_iter().map(|(n, t)| (n, t.into_bytes())).collect();
    forms.push(("UTF-16LE".into(), utf16(&format!("\"{CVC}\""), true)));
    forms.push(("UTF-16BE".into(), utf16(&format!("\"{CVC}\""), false)));
    forms
}

/// Bytes as a string of one char per byte (Latin-1), so that std's fast substring search finds
/// any byte sequence, binary or not.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn find(haystack: &str, needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.contains(latin1(needle).as_str())
}

/// The data directory's database files and process output, and their contents now.
fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("smartpay.db") || name.ends_with(".out") || name.ends_with(".err")
        })
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn canary_card_numbers_and_cvc_never_reach_the_database_files_logs_or_responses() {
    let dirs = Dirs::new();
    let d = &dirs.data;
    let m = create_merchant(d, "Vault canary shop");
    let seed = run_seed();
    // Canary numbers from this run's seed: Luhn-valid, used nowhere else.
    let api_visa = luhn_complete(&format!("4{seed}713370001"));
    let api_mc = luhn_complete(&format!("52{seed}71337001"));
    let widget_visa = luhn_complete(&format!("4{seed}713370002"));
    let widget_amex = luhn_complete(&format!("37{seed}7133701"));
    let refused = luhn_complete(&format!("4{seed}713370003"));
    let pans = [&api_visa, &api_mc, &widget_visa, &widget_amex, &refused];
    assert_eq!((api_visa.len(), api_mc.len(), widget_amex.len()), (16, 16, 15));

    let server = Server::start(d, free_port(), &[("SMARTPAY_LOG_LEVEL", "debug"), ("SMARTPAY_LOG_FORMAT", "json")]);
    let c = Client::new(&server.base, &m);
    let (api_account, widget_account) = ("canary-api", "canary-widget");

    // Through the account API: two cards, one stored twice (the keyed fingerprint finds it),
    // one refused (the claimed brand does not match the number).
    c.checkout(Some(api_account));
    let visa_ref = c.store(api_account, &api_visa, "VISA");
    let mc_ref = c.store(api_account, &api_mc, "MASTERCARD");
    assert_eq!(c.store(api_account, &api_visa, "VISA"), visa_ref, "a card already stored is found again");
    let (status, body) =
        c.api("POST", &format!("/accounts/{api_account}/paymentOptions"), Some(&store_body(&refused, "AMEX")));
    assert_eq!(status, 400, "{body}");
    assert_eq!(c.api("GET", &format!("/accounts/{api_account}/paymentOptions/{mc_ref}"), None).0, 200);

    // Through the widget: a Visa, and an AMEX entered with the CVC canary, both stored.
    c.checkout(Some(widget_account));
    let widget_visa_ref = c.pay_and_store(widget_account, &widget_visa, "123")["storedPaymentOptionReference"]
        .as_str()
        .unwrap()
        .to_owned();
    let amex_ref =
        c.pay_and_store(widget_account, &widget_amex, CVC)["storedPaymentOptionReference"].as_str().unwrap().to_owned();

    // Paying with stored cards, then the masked list as the widget shows it.
    for (account, reference) in [(api_account, &visa_ref), (widget_account, &amex_ref)] {
        c.pay_stored(account, reference);
    }
    let (token, _) = c.checkout(Some(widget_account));
    let (status, body) = c.widget("GET", "/widget/api/options", &token, None);
    assert_eq!(status, 200);
    let shown: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["options"].as_array().unwrap().len(), 2, "{body}");

    // A DEK rotation while the server runs; stored cards still pay afterwards.
    let rotate = cli_env(d, &["keys", "rotate-dek"], &[]);
    assert!(rotate.status.success(), "{}", String::from_utf8_lossy(&rotate.stderr));
    let verify = cli_env(d, &["keys", "vault-verify"], &[]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    c.pay_stored(widget_account, &widget_visa_ref);
    c.pay_stored(api_account, &mc_ref);

    // The masked forms are what the API shows: the scan below looks at real card data.
    let (status, options) = c.list(api_account);
    assert_eq!(status, 200);
    let masked: Vec<String> = options.iter().map(|o| o["carrierNumber"].as_str().unwrap().to_owned()).collect();
    for pan in [&api_visa, &api_mc] {
        let want = format!("{}****{}", &pan[..6], &pan[pan.len() - 4..]);
        assert!(masked.contains(&want), "{want} in {masked:?}");
    }

    // Copies of the database files while the server runs (the WAL holds the recent pages),
    // then the files once it stopped.
    let running = snapshot(d);
    assert!(running.iter().any(|(n, _)| n == "smartpay.db-wal"), "the WAL is scanned: {:?}", names(&running));
    assert!(server.terminate().success());
    let stopped = snapshot(d);
    let mut scanned: Vec<(String, Vec<u8>)> = Vec::new();
    scanned.extend(running.into_iter().map(|(n, b)| (format!("{n} (while serving)"), b)));
    scanned.extend(stopped.into_iter().map(|(n, b)| (format!("{n} (after stop)"), b)));
    for (name, out) in [("rotate-dek", &rotate), ("vault-verify", &verify)] {
        scanned.push((format!("{name} stdout"), out.stdout.clone()));
        scanned.push((format!("{name} stderr"), out.stderr.clone()));
    }
    let responses: Vec<(String, Vec<u8>)> =
        c.seen.borrow().iter().enumerate().map(|(i, b)| (format!("response {i}"), b.clone().into_bytes())).collect();
    let scanned: Vec<(String, String)> =
        scanned.iter().chain(&responses).map(|(n, b)| (n.clone(), latin1(b))).collect();

    // Positive controls: the scan reads real content.
    let in_db = |text: &str| scanned.iter().any(|(n, b)| n.starts_with("smartpay.db") && find(b, text.as_bytes()));
    assert!(masked.iter().all(|m| in_db(m)), "the database files hold the stored options (masked)");
    let logged = scanned.iter().any(|(n, b)| n.contains(".err") && find(b, b"payment option stored"));
    assert!(logged, "the server's log was written and scanned");
    assert!(responses.len() > 20, "response bodies recorded: {}", responses.len());

    let mut hits = Vec::new();
    for pan in pans {
        for (form, needle) in pan_forms(pan) {
            for (name, data) in &scanned {
                if find(data, &needle) {
                    hits.push(format!("card …{} as {form} in {name}", &pan[pan.len() - 4..]));
                }
            }
        }
    }
    for (form, needle) in cvc_forms() {
        for (name, data) in &scanned {
            if find(data, &needle) {
                hits.push(format!("CVC canary as {form} in {name}"));
            }
        }
    }
    assert!(hits.is_empty(), "canary hits:\n{}", hits.join("\n"));
    let conn = rusqlite::Connection::open(d.join("smartpay.db")).unwrap();
    let options: i64 = conn.query_row("SELECT COUNT(*) FROM payment_options", [], |r| r.get(0)).unwrap();
    assert_eq!(options, 4, "the four stored cards are in the database, sealed");
}

fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(n, _)| n.as_str()).collect()
}
