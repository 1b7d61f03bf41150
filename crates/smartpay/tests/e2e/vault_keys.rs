//! G3 through the binary: the vault's key-encryption key from two split-knowledge components,
//! from the environment (hex and base64url text), and from a key file, as an operator gives
//! them. Only the right key opens the vault; otherwise its routes fail closed with 503
//! `vault_unavailable` while the rest of the API keeps serving. A key file readable by others is
//! refused, and the log says why.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::vault_rig::*;
use super::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The 32 bytes of a key or component file written by `generate-kek` (base64url text).
fn key_bytes(path: &std::path::Path) -> Vec<u8> {
    let bytes = URL_SAFE_NO_PAD.decode(std::fs::read_to_string(path).unwrap().trim()).unwrap();
    assert_eq!(bytes.len(), 32, "{} holds 32 bytes", path.display());
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The vault is closed (503 `vault_unavailable` on the account routes, the widget told so),
/// while Create Checkout and Get Payment Status still answer 200.
fn assert_vault_closed_api_serving(c: &Client, account: &str, why: &str) {
    let (status, body) = c.api("GET", &format!("/accounts/{account}/paymentOptions"), None);
    assert_eq!(status, 503, "{why}: listing must fail closed: {body}");
    assert!(has_code(&body, "vault_unavailable"), "{why}: {body}");
    let pan = luhn_complete(&format!("4{}000000099", run_seed()));
    let (status, body) = c.api("POST", &format!("/accounts/{account}/paymentOptions"), Some(&store_body(&pan, "VISA")));
    assert_eq!(status, 503, "{why}: storing must fail closed: {body}");
    let (token, id) = c.checkout(Some(account));
    let (status, body) = c.api("GET", &format!("/payment/status/{id}"), None);
    assert_eq!(status, 200, "{why}: the rest of the API serves: {body}");
    let (status, body) = c.widget("GET", "/widget/api/options", &token, None);
    assert_eq!(status, 200, "{why}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["vaultUnavailable"], true, "{why}: {body}");
    assert_eq!(v["options"], serde_json::json!([]), "{why}: {body}");
}

fn log_of(server: &Server) -> String {
    std::fs::read_to_string(&server.stderr).unwrap() + &std::fs::read_to_string(&server.stdout).unwrap()
}

#[test]
fn vault_keys_from_components_environment_and_files_open_only_the_right_vault() {
    let dirs = Dirs::new();
    let m = create_merchant(&dirs.data, "Vault key shop");
    let (a, b) = (dirs.key("a.part"), dirs.key("b.part"));
    let out =
        cli_ok(&dirs.data, &["keys", "generate-kek", a.to_str().unwrap(), "--components", b.to_str().unwrap()], &[]);
    assert!(out.contains("neither alone reveals the key"), "{out}");
    assert_eq!((mode(&a), mode(&b)), (0o600, 0o600), "components are written owner-only");
    let (a_bytes, b_bytes) = (key_bytes(&a), key_bytes(&b));
    assert_ne!(a_bytes, b_bytes);
    let kek: Vec<u8> = a_bytes.iter().zip(&b_bytes).map(|(x, y)| x ^ y).collect();
    let components = format!("{},{}", a.display(), b.display());
    let account = "key-sources-1";
    let seed = run_seed();
    let pans = [luhn_complete(&format!("4{seed}000000001")), luhn_complete(&format!("4{seed}000000002"))];

    // Both components: the vault serves; options are stored and listed.
    let server = Server::start(&dirs.data, free_port(), &[("SMARTPAY_VAULT_KEK_COMPONENTS", &components)]);
    let c = Client::new(&server.base, &m);
    c.checkout(Some(account));
    let mut stored: Vec<String> = pans.iter().map(|p| c.store(account, p, "VISA")).collect();
    stored.sort();
    assert_eq!(c.references(account), stored);
    c.pay_stored(account, &stored[0]);
    assert!(log_of(&server).contains("vault ready"), "the vault opened with both components");
    assert!(server.terminate().success());

    // One component alone, as the key file: a valid key, but not the vault's.
    for (part, name) in [(&a, "component a"), (&b, "component b")] {
        let server = Server::start(&dirs.data, free_port(), &[("SMARTPAY_VAULT_KEK_FILE", part.to_str().unwrap())]);
        let c = Client::new(&server.base, &m);
        assert_vault_closed_api_serving(&c, account, name);
        assert!(log_of(&server).contains("vault unavailable"), "{name}: the log says why");
        assert!(server.terminate().success());
    }
    // A wrong second component (a and a fresh one).
    let (x, y) = (dirs.key("x.part"), dirs.key("y.part"));
    cli_ok(&dirs.data, &["keys", "generate-kek", x.to_str().unwrap(), "--components", y.to_str().unwrap()], &[]);
    let wrong = format!("{},{}", a.display(), x.display());
    let server = Server::start(&dirs.data, free_port(), &[("SMARTPAY_VAULT_KEK_COMPONENTS", &wrong)]);
    assert_vault_closed_api_serving(&Client::new(&server.base, &m), account, "a wrong component");
    assert!(server.terminate().success());

    // The same key given as text in SMARTPAY_VAULT_KEK: hex (either case) and base64url.
    let texts = [hex(&kek), hex(&kek).to_uppercase(), URL_SAFE_NO_PAD.encode(&kek)];
    for text in &texts {
        let server = Server::start(&dirs.data, free_port(), &[("SMARTPAY_VAULT_KEK", text)]);
        let c = Client::new(&server.base, &m);
        assert_eq!(c.references(account), stored, "SMARTPAY_VAULT_KEK as {:.6}… opens the vault", text);
        c.pay_stored(account, &stored[1]);
        let logs = log_of(&server);
        assert!(server.terminate().success());
        for secret in texts.iter().map(String::as_str).chain([hex(&a_bytes).as_str(), hex(&b_bytes).as_str()]) {
            assert!(!logs.contains(secret), "key material in the server's log");
        }
    }
    // Key text that is not 32 bytes: refused, the vault closed, the API serving.
    let short = hex(&kek[..31]);
    let server = Server::start(&dirs.data, free_port(), &[("SMARTPAY_VAULT_KEK", &short)]);
    assert_vault_closed_api_serving(&Client::new(&server.base, &m), account, "31-byte key text");
    assert!(server.terminate().success());

    // The right key in a file readable by group and others: refused, and the log names the mode.
    let exposed = dirs.key("exposed.kek");
    std::fs::write(&exposed, format!("{}\n", URL_SAFE_NO_PAD.encode(&kek))).unwrap();
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(&dirs.data, free_port(), &[("SMARTPAY_VAULT_KEK_FILE", exposed.to_str().unwrap())]);
    let c = Client::new(&server.base, &m);
    assert_vault_closed_api_serving(&c, account, "a 0644 key file");
    let logs = log_of(&server);
    assert!(server.terminate().success());
    assert!(logs.contains("mode 0644"), "the log names the key file's mode: {logs:.2000}");
    assert_eq!(mode(&exposed), 0o644, "the server does not silently change the key file's mode");
    // The same file made owner-only opens the vault.
    std::fs::set_permissions(&exposed, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start(&dirs.data, free_port(), &[("SMARTPAY_VAULT_KEK_FILE", exposed.to_str().unwrap())]);
    assert_eq!(Client::new(&server.base, &m).references(account), stored);
    assert!(server.terminate().success());
}
