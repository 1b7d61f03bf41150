//! The OpenAPI 3.1 document at `/openapi.json` and the API page at `/docs`.
//!
//! Paths and response schemas come from the handlers' `#[utoipa::path]` annotations and the
//! api-types; the Create Checkout request schema is generated from the same rule table that
//! validates requests (`smartpay_domain::checkout::CHECKOUT`), so documented limits are the
//! enforced ones. The `/docs` page is Swagger UI, vendored into the binary at build time.

use std::sync::OnceLock;

use serde_json::{Value, json};
use smartpay_domain::checkout::CHECKOUT;
use smartpay_domain::schema::{Field, Kind, Text};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::{accounts, handlers, notifications, widget};

#[derive(OpenApi)]
#[openapi(
    info(title = "SmartPay API", description = "Merchant REST API of the self-hosted SmartPay payment platform. \
        Amounts are JSON numbers in major units, parsed exactly. Errors use the MOD2 body; codes are listed in docs/api.md."),
    paths(
        handlers::create_checkout, handlers::payment_status, handlers::capture, handlers::refund,
        handlers::cancel, handlers::cancel_or_refund, handlers::oauth_token, handlers::jwks,
        handlers::live, handlers::ready, handlers::openapi_json,
        widget::loader, widget::integrity, widget::bins, widget::frame, widget::frame_js, widget::frame_css,
        widget::challenge_return, widget::return_js, widget::submit, widget::complete, widget::hosted,
        widget::hosted_js, widget::demo, widget::demo_js, widget::demo_checkout, widget::demo_status,
        widget::demo_capture, widget::demo_refund, widget::demo_cancel, widget::submit_redirect,
        handlers::provider_notification, notifications::get_settings, notifications::put_settings,
        notifications::delete_settings, notifications::rotate_secret, notifications::list, notifications::get_one,
        notifications::redeliver, accounts::list, accounts::get_one, accounts::delete, accounts::store,
        accounts::update, widget::options, widget::delete_option, widget::default_option
    ),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("merchantKey as user name, authentication key as password"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from POST /oauth2/token"))
                    .build(),
            ),
        );
    }
}

fn text_schema(min: usize, max: usize, text: Text) -> Value {
    let mut s = json!({"type": "string", "minLength": min, "maxLength": max});
    let extra = match text {
        // No control characters or bidirectional overrides (`schema::is_forbidden_char`).
        Text::Any => json!({"pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069]*$"}),
        Text::Uuid => json!({"format": "uuid"}),
        Text::Charset(chars) => {
            let escaped: String =
                chars.chars().map(|c| if c == '-' { "\\-".to_owned() } else { c.to_string() }).collect();
            json!({"pattern": format!("^[A-Za-z0-9{escaped}]+$")})
        }
        Text::OneOf(values) => json!({"enum": values, "description": "Compared without regard to case."}),
        Text::Email => json!({"format": "email"}),
        Text::Country2 => json!({"pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2"}),
        Text::Country23 => json!({"pattern": "^[A-Z]{2,3}$", "description": "ISO 3166-1 alpha-2 or alpha-3"}),
        Text::Currency => json!({"pattern": "^[A-Z]{3}$", "description": "ISO 4217"}),
        Text::Date => json!({"format": "date"}),
        Text::Culture => json!({"pattern": "^[A-Za-z]{2}-[A-Za-z]{2}$"}),
        Text::Url => json!({"format": "uri"}),
    };
    if let (Some(obj), Value::Object(more)) = (s.as_object_mut(), extra) {
        for (k, v) in more {
            obj.insert(k, v);
        }
    }
    s
}

fn kind_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Str { min, max, text } => text_schema(*min, *max, *text),
        Kind::Amount { positive: true } => {
            json!({"type": "number", "exclusiveMinimum": 0, "description": "Major units, at most the currency's decimals"})
        }
        Kind::Amount { positive: false } => {
            json!({"type": "number", "minimum": 0, "description": "Major units, at most the currency's decimals"})
        }
        Kind::Decimal { scale, min, max } => {
            json!({"type": "number", "minimum": min, "maximum": max, "multipleOf": 10f64.powi(-i32::from(*scale))})
        }
        Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Object(fields) => fields_schema(fields),
        Kind::Array { item, max_items } => json!({"type": "array", "items": kind_schema(item), "maxItems": max_items}),
        Kind::Exemption => json!({"oneOf": [
            text_schema(1, 3, Text::OneOf(&["LVA"])),
            fields_schema(smartpay_domain::schema::EXEMPTION_OBJECT),
        ]}),
    }
}

/// The JSON Schema of an object described by a rule table.
pub fn fields_schema(fields: &[Field]) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for f in fields {
        let mut s = kind_schema(&f.kind);
        if let Some(o) = s.as_object_mut() {
            o.insert("description".into(), Value::from(f.description));
        }
        properties.insert(f.name.into(), s);
        if f.required {
            required.push(f.name);
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": true,
        "description": "Unknown properties are accepted and listed in ignoredProperties."
    })
}

/// The token endpoint's form (RFC 6749 §4.4.2): at most 16 parameters; unknown ones are ignored
/// (§3.2); `scope` must be blank, since no scopes are defined (the pattern is Rust's
/// `char::is_whitespace`).
fn token_form_schema() -> Value {
    json!({
        "type": "object",
        "required": ["grant_type"],
        "maxProperties": 16,
        "properties": {
            "grant_type": {"type": "string", "enum": ["client_credentials"]},
            "client_id": {"type": "string", "description": "With client_secret; or send both in an Authorization: Basic header instead."},
            "client_secret": {"type": "string"},
            "scope": {"type": "string", "pattern": "^[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$", "description": "No scopes are defined: absent or blank."}
        },
        "additionalProperties": {"type": "string"}
    })
}

/// The whole document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
        let mut request = fields_schema(CHECKOUT);
        if let Some(o) = request.as_object_mut() {
            o.insert(
                "description".into(),
                Value::from("Create Checkout. `consumer` or `businessConsumer` is required; `billingAddress.state` is required for US/USA/CA/CAN."),
            );
        }
        doc["components"]["schemas"]["CreateCheckoutRequest"] = request;
        doc["paths"]["/payment/creation"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
            json!({"$ref": "#/components/schemas/CreateCheckoutRequest"});
        doc["paths"]["/oauth2/token"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"] =
            token_form_schema();
        use smartpay_domain::modify::{WITH_AMOUNT, WITHOUT_AMOUNT};
        doc["components"]["schemas"]["CaptureOrRefundRequest"] = fields_schema(WITH_AMOUNT);
        doc["components"]["schemas"]["CancelRequest"] = fields_schema(WITHOUT_AMOUNT);
        doc["components"]["schemas"]["StorePaymentOptionRequest"] =
            fields_schema(smartpay_domain::account::STORE_OPTION);
        doc["components"]["schemas"]["UpdateAccountRequest"] = fields_schema(smartpay_domain::account::UPDATE_ACCOUNT);
        doc["paths"]["/accounts/{customerAccountId}/paymentOptions"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"] = json!({"$ref": "#/components/schemas/StorePaymentOptionRequest"});
        doc["paths"]["/accounts/{customerAccountId}"]["patch"]["requestBody"]["content"]["application/json"]["schema"] =
            json!({"$ref": "#/components/schemas/UpdateAccountRequest"});
        for (path, schema) in [
            ("/payment/capture", "CaptureOrRefundRequest"),
            ("/payment/refund", "CaptureOrRefundRequest"),
            ("/payment/cancel", "CancelRequest"),
            ("/payment/cancelOrRefund", "CancelRequest"),
        ] {
            doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"] =
                json!({"$ref": format!("#/components/schemas/{schema}")});
        }
        doc
    })
}

/// The document as JSON text.
pub fn document_json() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| serde_json::to_string_pretty(document()).unwrap_or_default())
}

/// Swagger UI at `/docs`, reading `/openapi.json`; its assets are inside the binary.
pub fn docs_ui<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let doc = document();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        for p in [
            "/payment/creation",
            "/payment/status/{transactionId}",
            "/oauth2/token",
            "/.well-known/jwks.json",
            "/health/live",
            "/health/ready",
            "/openapi.json",
        ] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        assert!(!paths.contains(&"/metrics"), "metrics live on the operators' listener, not in the public API");
        // L7: no documented path the router lacks, and no routed path left undocumented (the
        // route table is in http.rs; the sandbox acquirer, a fake outside system, is nested apart).
        let router_src = include_str!("../http.rs");
        for p in &paths {
            assert!(router_src.contains(&format!("\"{p}\"")), "{p} documented but not routed");
        }
        let routed: Vec<&str> = router_src.split(".route(\"").skip(1).filter_map(|r| r.split('"').next()).collect();
        assert!(routed.len() >= 20, "{routed:?}");
        for r in routed {
            assert!(paths.contains(&r), "{r} routed but not documented");
        }
    }

    #[test]
    fn the_request_schema_carries_the_enforced_limits() {
        let s = &document()["components"]["schemas"]["CreateCheckoutRequest"];
        assert_eq!(s["properties"]["payment"]["properties"]["description"]["maxLength"], 127);
        assert_eq!(s["properties"]["billingAddress"]["properties"]["addressLine1"]["maxLength"], 60);
        assert_eq!(s["properties"]["partnerReference"]["pattern"], "^[A-Za-z0-9\\-_.:]+$");
        assert_eq!(s["required"], json!(["merchantKey", "payment", "billingAddress"]));
        assert_eq!(
            document()["paths"]["/payment/creation"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/CreateCheckoutRequest"
        );
    }
}
