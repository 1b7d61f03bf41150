//! The widget's server side: embedding origins, and the assets of the loader script, the card
//! frame, the hosted checkout and the demo shop (all shipped inside the binary from `widget/`).

use std::sync::OnceLock;

use crate::app::AppState;

/// `scheme://host[:port]` in the form browsers send in `Origin`, or `None`.
pub fn normalize_origin(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('/');
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let rest = rest.to_ascii_lowercase();
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
                if rest.starts_with('[') && rest.ends_with(']') {
                    (rest.as_str(), None)
                } else {
                    return None;
                }
            } else {
                (h, Some(p))
            }
        }
        _ => (rest.as_str(), None),
    };
    if host.is_empty() {
        return None;
    }
    let default = if scheme == "https" { "443" } else { "80" };
    Some(match port {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The origin of an absolute `http(s)` URL.
pub fn origin_of_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    normalize_origin(&format!("{scheme}://{authority}"))
}

/// Origins allowed to embed `merchant_id`'s widget: registered ones, configured ones, and in
/// sandbox mode this server's own origin (its demo shop and hosted checkout).
pub async fn allowed_origins(state: &AppState, merchant_id: &str) -> Result<Vec<String>, smartpay_store::StoreError> {
    let mut origins = state.store.origins(merchant_id).await?;
    if let Some(extra) = state.config.widget_origins.get(merchant_id) {
        origins.extend(extra.iter().filter_map(|o| normalize_origin(o)));
    }
    if let Some(own) = normalize_origin(state.public_base()) {
        origins.push(own);
    }
    origins.sort();
    origins.dedup();
    Ok(origins)
}

/// A file shipped with the binary.
pub struct Asset {
    pub body: &'static str,
    pub content_type: &'static str,
}

pub const LOADER: Asset =
    Asset { body: include_str!("../../../widget/smp-bundle.js"), content_type: "text/javascript; charset=utf-8" };
pub const FRAME_JS: Asset =
    Asset { body: include_str!("../../../widget/frame.js"), content_type: "text/javascript; charset=utf-8" };
pub const FRAME_CSS: Asset =
    Asset { body: include_str!("../../../widget/frame.css"), content_type: "text/css; charset=utf-8" };
pub const FRAME_HTML: &str = include_str!("../../../widget/frame.html");
pub const RETURN_JS: Asset =
    Asset { body: include_str!("../../../widget/challenge-return.js"), content_type: "text/javascript; charset=utf-8" };
pub const HOSTED_HTML: &str = include_str!("../../../widget/hosted.html");
pub const HOSTED_JS: Asset =
    Asset { body: include_str!("../../../widget/hosted.js"), content_type: "text/javascript; charset=utf-8" };
pub const DEMO_HTML: &str = include_str!("../../../widget/demo.html");
pub const DEMO_JS: Asset =
    Asset { body: include_str!("../../../widget/demo.js"), content_type: "text/javascript; charset=utf-8" };

/// The BIN table as JSON, for the frame's brand detection (the same table the server uses).
pub fn bins_json() -> &'static str {
    static BINS: OnceLock<String> = OnceLock::new();
    BINS.get_or_init(|| {
        let rows: Vec<serde_json::Value> = smartpay_domain::card::BIN_TABLE
            .iter()
            .map(|r| {
                serde_json::json!({
                    "from": r.from, "to": r.to, "digits": r.digits, "brand": r.brand.code(),
                    "lengths": r.lengths, "cvcLength": r.brand.cvc_len(),
                })
            })
            .collect();
        serde_json::Value::from(rows).to_string()
    })
}

/// `sha384-…` Subresource Integrity value of the loader script, for `<script integrity=…>`.
pub fn loader_integrity() -> &'static str {
    static SRI: OnceLock<String> = OnceLock::new();
    SRI.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha384::digest(LOADER.body.as_bytes());
        format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(digest))
    })
}

pub use smartpay_domain::html::escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_have_origins() {
        assert_eq!(origin_of_url("https://shop.example/done?x=1"), Some("https://shop.example".into()));
        assert_eq!(origin_of_url("http://127.0.0.1:8001#frag"), Some("http://127.0.0.1:8001".into()));
        assert_eq!(origin_of_url("https://evil.example@shop.example/"), None);
        assert_eq!(origin_of_url("javascript:alert(1)"), None);
    }

    #[test]
    fn origins_are_normalized_like_browsers_send_them() {
        assert_eq!(normalize_origin("https://Shop.Example/"), Some("https://shop.example".into()));
        assert_eq!(normalize_origin("https://shop.example:443"), Some("https://shop.example".into()));
        assert_eq!(normalize_origin("http://127.0.0.1:8001"), Some("http://127.0.0.1:8001".into()));
        for bad in [
            "shop.example",
            "ftp://x",
            "https://",
            "https://a/b",
            "https://a:99999",
            "javascript:alert(1)",
            "https://u@a",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }
}
