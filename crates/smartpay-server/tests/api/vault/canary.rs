//! What reaches the database files (matrix rows G1 and G8, in-process): canary card numbers
//! stored through the API and the widget, and a canary CVC, are absent from the raw bytes of the
//! SQLite main, `-wal` and `-shm` files in every encoding checked; no column of the schema is
//! named for sensitive authentication data.

use base64::Engine;
use sha2::Digest;

use super::*;

/// A canary card: its number, how its digits are grouped when printed, and its masked form.
struct Canary {
    number: String,
    groups: &'static [usize],
}

impl Canary {
    fn new(prefix: &str, groups: &'static [usize]) -> Canary {
        let number = luhn(prefix);
        assert_eq!(groups.iter().sum::<usize>(), number.len());
        Canary { number, groups }
    }

    fn masked(&self) -> String {
        format!("{}****{}", &self.number[..6], &self.number[self.number.len() - 4..])
    }

    fn grouped(&self, sep: &str) -> String {
        let mut parts = Vec::new();
        let mut at = 0;
        for g in self.groups {
            parts.push(&self.number[at..at + g]);
            at += g;
        }
        parts.join(sep)
    }

    /// Every form of the number looked for, with its name.
    fn forms(&self) -> Vec<(String, Vec<u8>)> {
        let n = self.number.as_str();
        let mut forms = vec![
            ("raw".to_owned(), n.as_bytes().to_vec()),
            ("spaced".to_owned(), self.grouped(" ").into_bytes()),
            ("dashed".to_owned(), self.grouped("-").into_bytes()),
            ("hex".to_owned(), hex(n.as_bytes()).into_bytes()),
            ("HEX".to_owned(), hex(n.as_bytes()).to_uppercase().into_bytes()),
            ("utf-16le".to_owned(), n.encode_utf16().flat_map(u16::to_le_bytes).collect()),
            ("utf-16be".to_owned(), n.encode_utf16().flat_map(u16::to_be_bytes).collect()),
            ("sha-256".to_owned(), sha2::Sha256::digest(n.as_bytes()).to_vec()),
            ("sha-256 hex".to_owned(), hex(&sha2::Sha256::digest(n.as_bytes())).into_bytes()),
        ];
        for (name, engine) in [
            ("base64", &base64::engine::general_purpose::STANDARD_NO_PAD),
            ("base64url", &base64::engine::general_purpose::URL_SAFE_NO_PAD),
        ] {
            forms.push((name.to_owned(), engine.encode(n).into_bytes()));
        }
        // Packed BCD, as some card formats keep numbers.
        let bcd: Vec<u8> =
            n.as_bytes().chunks(2).map(|p| ((p[0] - b'0') << 4) | p.get(1).map_or(0xf, |d| d - b'0')).collect();
        forms.push(("bcd".to_owned(), bcd));
        forms
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    (0..haystack.len().saturating_sub(needle.len() - 1))
        .find(|&i| haystack[i] == first && haystack[i..].starts_with(needle))
}

/// Where `digits` stands alone (not next to another letter or digit), as a stored CVC would.
fn find_standalone(haystack: &[u8], digits: &[u8]) -> Option<usize> {
    let alnum = |i: Option<usize>| i.and_then(|i| haystack.get(i)).is_some_and(u8::is_ascii_alphanumeric);
    (0..haystack.len().saturating_sub(digits.len() - 1))
        .find(|&i| haystack[i..].starts_with(digits) && !alnum(i.checked_sub(1)) && !alnum(Some(i + digits.len())))
}

/// The database's files: main, WAL and shared memory, as far as they exist.
fn database_files(app: &TestApp, config: &Config) -> Vec<(String, Vec<u8>)> {
    let main = config.database_path();
    let mut files = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", main.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            files.push((path.display().to_string(), bytes));
        }
    }
    assert!(
        files.iter().any(|(p, _)| p.ends_with("smartpay.db")),
        "{:?} in {}",
        files.len(),
        app._dir.path().display()
    );
    files
}

/// Asserts that no form of any of `canaries`, and no stand-alone `cvc`, is in any of `files`;
/// and that the masked numbers of the `stored` ones are (the scan reads the files the data went
/// to).
fn scan(files: &[(String, Vec<u8>)], canaries: &[&Canary], stored: &[&Canary], cvc: &str, when: &str) {
    let mut hits = Vec::new();
    for (path, bytes) in files {
        for c in canaries {
            for (form, needle) in c.forms() {
                if let Some(at) = find(bytes, &needle) {
                    hits.push(format!("{when}: {form} form of a canary number in {path} at {at}"));
                }
            }
        }
        if let Some(at) = find_standalone(bytes, cvc.as_bytes()) {
            hits.push(format!("{when}: the canary CVC in {path} at {at}"));
        }
        for key in [&b"\"cvc\""[..], b"\"cvv\"", b"\"securityCode\""] {
            if let Some(at) = find(bytes, key) {
                hits.push(format!("{when}: {} in {path} at {at}", String::from_utf8_lossy(key)));
            }
        }
    }
    assert!(hits.is_empty(), "{}", hits.join("\n"));
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    for c in stored {
        assert!(
            find(&all, c.masked().as_bytes()).is_some(),
            "{when}: the masked {} is not in the files read",
            c.masked()
        );
    }
}

#[tokio::test]
async fn canary_card_numbers_and_cvcs_never_reach_the_database_files() {
    let mut app = vault_app_with(|_| {}).await;
    let a = app.merchant.clone();
    // Unique numbers: through the API, through the widget (stored, with a 4-digit CVC canary),
    // and a third paid as a guest with the same CVC canary.
    let api = Canary::new("424242733198765", &[4, 4, 4, 4]);
    let widget = Canary::new("37733100424242", &[4, 6, 5]);
    let guest = Canary::new("37424273310042", &[4, 6, 5]);
    let cvc = "7331";
    let mut answers = Vec::new();

    app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.store_option(&a, ACCOUNT, &store_body(&api.number, month_from_now(&app, 36))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    answers.push(r.text());
    let (_, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, card_entry(&app, &widget.number, cvc, true)).await;
    assert_eq!(r.json()["transactionStatus"], "CAPTURED", "{}", r.text());
    let stored = r.json()["storedPaymentOptionReference"].as_str().unwrap().to_owned();
    answers.push(r.text());
    let (_, token) = app.checkout_for(&a, None).await;
    let r = app.widget_pay(&token, card_entry(&app, &guest.number, cvc, false)).await;
    assert_eq!(r.json()["transactionStatus"], "CAPTURED", "{}", r.text());
    answers.push(r.text());
    // Paying with the stored one, and reading everything back.
    let (id, token) = app.checkout_for(&a, Some(ACCOUNT)).await;
    let r = app.widget_pay(&token, json!({"storedPaymentOptionReference": stored})).await;
    assert_eq!(r.json()["transactionStatus"], "CAPTURED", "{}", r.text());
    answers.push(r.text());
    answers.push(app.list_options(&a, ACCOUNT).await.text());
    answers.push(app.widget_options(&token).await.text());
    answers.push(app.view(&a, &id).await.to_string());
    let listed = app.options_of(&a, ACCOUNT).await;
    let mut masked: Vec<_> = listed.iter().map(|o| o["carrierNumber"].as_str().unwrap().to_owned()).collect();
    masked.sort();
    let mut expected = vec![api.masked(), widget.masked()];
    expected.sort();
    assert_eq!(masked, expected);

    for (i, text) in answers.iter().enumerate() {
        for c in [&api, &widget, &guest] {
            assert!(!text.contains(&c.number) && !text.contains(&c.grouped(" ")), "answer {i} holds a number: {text}");
        }
    }
    let config = app.state().config.clone();
    let (all, kept) = ([&api, &widget, &guest], [&api, &widget]);
    scan(&database_files(&app, &config), &all, &kept, cvc, "while serving");
    // After a shutdown too.
    let running = app.running.take().unwrap();
    running.shutdown().await.unwrap();
    scan(&database_files(&app, &config), &all, &kept, cvc, "after shutdown");
}

/// Whether a column or table name is named for sensitive authentication data (CVC/CVV/CID,
/// track data, PIN): by its whole `_`-separated parts, so `pending` or `shipping` are not.
fn names_sad(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()).collect();
    let word = |p: &&str| {
        matches!(
            *p,
            "cvc"
                | "cvv"
                | "cvc2"
                | "cvv2"
                | "cid"
                | "cav2"
                | "cvn"
                | "csc"
                | "track"
                | "track1"
                | "track2"
                | "trackdata"
                | "pin"
                | "pinblock"
                | "securitycode"
                | "magstripe"
        )
    };
    parts.iter().any(word)
        || lower.contains("cvc")
        || lower.contains("cvv")
        || lower.contains("security_code")
        || lower.contains("track_data")
        || lower.contains("pin_block")
}

#[tokio::test]
async fn no_table_or_column_is_named_for_a_cvc_track_data_or_a_pin() {
    // The rule itself: whole parts, not letters inside words.
    for flagged in ["cvc", "card_cvc", "cvv2", "CID", "track2_data", "pin", "pin_block", "payer_pin", "cvcSealed"] {
        assert!(names_sad(flagged), "{flagged}");
    }
    for fine in ["pending", "shipping", "spinner", "tracking_id", "decided_at_ms", "checkout_id", "opinion"] {
        assert!(!names_sad(fine), "{fine}");
    }
    let (app, _clock) = vault_app().await;
    let db = rusqlite::Connection::open_with_flags(
        app.state().config.database_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(tables.iter().any(|t| t == "payment_options"), "the vault's tables are there: {tables:?}");
    let mut columns = 0;
    let mut bad = Vec::new();
    for t in &tables {
        if names_sad(t) {
            bad.push(t.clone());
        }
        let names: Vec<String> = db
            .prepare(&format!("SELECT name FROM pragma_table_info('{}')", t.replace('\'', "''")))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        columns += names.len();
        bad.extend(names.into_iter().filter(|c| names_sad(c)).map(|c| format!("{t}.{c}")));
    }
    assert!(columns > 50, "the whole schema was read: {columns} columns");
    assert!(bad.is_empty(), "named for sensitive authentication data: {bad:?}");
}
