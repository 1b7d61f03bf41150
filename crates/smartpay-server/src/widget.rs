//! The widget's server side: embedding origins, the assets of the loader script, and the pages of
//! the card frame, the hosted checkout, the demo shop and the 3-D Secure return (all shipped inside
//! the binary from `widget/`). Pages are askama templates: every value is HTML-escaped (quotes
//! included, so attribute values cannot be left), and one value can never fill another's slot.

use std::sync::OnceLock;

use askama::Template;

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

/// The merchant's own origins: registered ones and configured ones — where its widget may be
/// embedded and where its hosted checkout may send the shopper back (`returnUrl`). In sandbox
/// mode this server's own origin is one of them too (the demo shop is a merchant page there).
pub async fn allowed_origins(state: &AppState, merchant_id: &str) -> Result<Vec<String>, smartpay_store::StoreError> {
    let mut origins = state.store.origins(merchant_id).await?;
    if let Some(extra) = state.config.widget_origins.get(merchant_id) {
        origins.extend(extra.iter().filter_map(|o| normalize_origin(o)));
    }
    if state.config.mode == crate::config::Mode::Sandbox
        && let Some(own) = normalize_origin(state.public_base())
    {
        origins.push(own);
    }
    origins.sort();
    origins.dedup();
    Ok(origins)
}

/// Origins that may frame the card frame: the merchant's ([`allowed_origins`]) and this
/// server's own, whose hosted checkout page (`/checkout/{token}`) embeds it in production too.
/// Nothing else is served from that origin that could embed a frame (docs/decisions/0004).
pub async fn frame_ancestors(state: &AppState, merchant_id: &str) -> Result<Vec<String>, smartpay_store::StoreError> {
    let mut origins = allowed_origins(state, merchant_id).await?;
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
pub const RETURN_JS: Asset =
    Asset { body: include_str!("../../../widget/challenge-return.js"), content_type: "text/javascript; charset=utf-8" };
pub const HOSTED_JS: Asset =
    Asset { body: include_str!("../../../widget/hosted.js"), content_type: "text/javascript; charset=utf-8" };
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

/// What the card frame (`widget/frame.html`) is filled with; the empty string where unknown.
#[derive(Template)]
#[template(path = "frame.html")]
pub struct FrameView<'a> {
    /// The checkout token, empty when the frame reports an error.
    pub token: &'a str,
    /// The embedding page's origin, the only target of the frame's `postMessage`.
    pub parent_origin: &'a str,
    /// `de-DE` or `en-US`.
    pub culture: &'a str,
    /// The amount as decimal text, e.g. `10.99`.
    pub amount: &'a str,
    /// ISO 4217 code.
    pub currency: &'a str,
    /// The merchant's description of the order (merchant input: shown as text only).
    pub description: &'a str,
    /// The merchant's name.
    pub merchant: &'a str,
    /// The payment's status.
    pub status: &'a str,
    /// `full` (method selector) or `confirm`.
    pub mode: &'a str,
    /// `ERR_CONFIG` when the frame must not be used, else empty.
    pub error: &'a str,
    /// The vault journey (reference §1.2): `GUEST` (no `customerAccountId`) or `REGISTERED`
    /// (the frame then loads the account's stored options from `/widget/api/options`).
    pub journey: &'a str,
}

impl FrameView<'_> {
    /// The page's `lang`: the culture's language subtag.
    fn lang(&self) -> &str {
        self.culture.split('-').next().unwrap_or("en")
    }
}

/// What the hosted checkout (`widget/hosted.html`) is filled with.
#[derive(Template)]
#[template(path = "hosted.html")]
pub struct HostedView<'a> {
    /// The checkout token, empty for an unknown checkout.
    pub token: &'a str,
    /// Where to send the shopper afterwards (already checked against the merchant's origins), or empty.
    pub return_url: &'a str,
    /// `de-DE` or `en-US` when the link named a culture; empty lets the frame choose (the
    /// checkout's `consumer.culture`, then the browser's language).
    pub culture: &'a str,
    /// SmartPay's own origin.
    pub origin: &'a str,
}

/// What the demo shop (`widget/demo.html`) is filled with.
#[derive(Template)]
#[template(path = "demo.html")]
pub struct DemoView<'a> {
    /// The loader's Subresource Integrity value.
    pub integrity: &'a str,
}

/// The 3-D Secure return page (`widget/challenge-return.html`): static, its script does the work.
#[derive(Template)]
#[template(path = "challenge-return.html")]
struct ChallengeReturnView;

/// Renders a page; a template only fails when a value's `Display` fails, which `&str` never does.
fn render(page: &impl Template) -> String {
    page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "page template failed");
        String::new()
    })
}

/// The card frame's HTML.
pub fn render_frame(view: &FrameView<'_>) -> String {
    render(view)
}

/// The hosted checkout's HTML.
pub fn render_hosted(view: &HostedView<'_>) -> String {
    render(view)
}

/// The demo shop's HTML.
pub fn render_demo(view: &DemoView<'_>) -> String {
    render(view)
}

/// The 3-D Secure return page's HTML.
pub fn render_challenge_return() -> String {
    render(&ChallengeReturnView)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(description: &str, mode: &str) -> String {
        render_frame(&FrameView {
            token: "tok_123",
            parent_origin: "https://shop.example",
            culture: "de-DE",
            amount: "10.99",
            currency: "EUR",
            description,
            merchant: "Shop & Co",
            status: "CREATED",
            mode,
            error: "",
            journey: "REGISTERED",
        })
    }

    #[test]
    fn the_frame_carries_every_value_in_its_slot() {
        let html = frame("Order 42", "full");
        for expected in [
            "<html lang=\"de\">",
            "data-token=\"tok_123\"",
            "data-parent-origin=\"https://shop.example\"",
            "data-culture=\"de-DE\"",
            "data-amount=\"10.99\"",
            "data-currency=\"EUR\"",
            "data-status=\"CREATED\"",
            "data-mode=\"full\"",
            "data-error=\"\"",
            "data-journey=\"REGISTERED\"",
            "<p class=\"smp-merchant\">Shop &#38; Co</p>",
            "<p class=\"smp-description\">Order 42</p>",
            "id=\"card-form\"",
            "<script src=\"/widget/frame.js\"></script>",
        ] {
            assert!(html.contains(expected), "{expected} missing in {html}");
        }
        assert!(!html.contains("{{") && !html.contains("}}"), "{html}");
    }

    #[test]
    fn a_description_with_placeholders_and_markup_is_shown_as_text_and_changes_nothing_else() {
        let hostile = "{{error}} {{token}} {{ self.lang() }} <script>alert('x')</script> \"quoted\"";
        let plain = frame("Order 42", "full");
        let html = frame(hostile, "full");
        assert!(html.contains(
            "<p class=\"smp-description\">{{error}} {{token}} {{ self.lang() }} \
             &#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#34;quoted&#34;</p>"
        ));
        assert!(!html.contains("<script>alert"));
        let others = |page: &str| -> Vec<String> {
            page.lines().filter(|l| !l.contains("smp-description")).map(str::to_owned).collect()
        };
        assert_eq!(others(&html), others(&plain));
    }

    #[test]
    fn quotes_cannot_leave_an_attribute() {
        let html = frame("x", "full\" onmouseover=\"alert(1)' x='");
        assert!(html.contains("data-mode=\"full&#34; onmouseover=&#34;alert(1)&#39; x=&#39;\""), "{html}");
        assert!(!html.contains("onmouseover=\""));
    }

    #[test]
    fn the_hosted_page_carries_its_values_escaped() {
        let html = render_hosted(&HostedView {
            token: "tok_1",
            return_url: "https://shop.example/done?a=1&b=\"2\"",
            culture: "en-US",
            origin: "https://pay.example",
        });
        for expected in [
            "data-token=\"tok_1\"",
            "data-return-url=\"https://shop.example/done?a=1&#38;b=&#34;2&#34;\"",
            "data-culture=\"en-US\"",
            "data-origin=\"https://pay.example\"",
            "id=\"selector-container\"",
        ] {
            assert!(html.contains(expected), "{expected} missing in {html}");
        }
    }

    #[test]
    fn the_demo_page_pins_the_loader_integrity() {
        let html = render_demo(&DemoView { integrity: loader_integrity() });
        let pinned = format!("integrity=\"{}\"", loader_integrity());
        assert!(html.contains(&pinned), "{html}");
        assert!(!html.contains("{{"));
    }

    #[test]
    fn the_challenge_return_page_only_loads_its_script() {
        let html = render_challenge_return();
        assert!(html.contains("<script src=\"/widget/challenge-return.js\"></script>"));
        assert_eq!(html.matches("<script").count(), 1);
    }

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
