//! Error messages in `en-US` and `de-DE`, chosen by `Accept-Language` (RFC 9110 §12.5.4).

use smartpay_domain::json::SyntaxErrorKind;
use smartpay_domain::violation::Fact;

use crate::error::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

/// The supported language the caller prefers most; `en-US` when none is acceptable.
pub fn negotiate(accept_language: Option<&str>) -> Lang {
    let Some(header) = accept_language else { return Lang::En };
    let mut best = (Lang::En, 0u16, true);
    for item in header.split(',') {
        let mut parts = item.trim().split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1000u16;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse::<f32>().map_or(0, |f| (f.clamp(0.0, 1.0) * 1000.0) as u16);
            }
        }
        let lang = match tag.split('-').next() {
            Some("de") => Lang::De,
            Some("en") | Some("*") => Lang::En,
            _ => continue,
        };
        if q > best.1 || (best.2 && q > 0) {
            best = (lang, q, false);
        }
    }
    best.0
}

fn fact(p: &Problem, key: &str) -> String {
    match p.context.iter().find(|(k, _)| *k == key).map(|(_, f)| f) {
        Some(Fact::Int(i)) => i.to_string(),
        Some(Fact::Text(t)) => t.clone(),
        Some(Fact::List(l)) => l.join(", "),
        None => String::new(),
    }
}

/// The message for a problem.
pub fn message(p: &Problem, lang: Lang) -> String {
    let f = |k: &str| fact(p, k);
    let de = lang == Lang::De;
    match p.code {
        "missing_property" => match (de, p.context.iter().any(|(k, _)| *k == "alternative")) {
            (false, true) => format!("A value is required here, or in {}.", f("alternative")),
            (true, true) => format!("Hier oder in {} ist ein Wert erforderlich.", f("alternative")),
            (false, false) => "A value is required.".into(),
            (true, false) => "Ein Wert ist erforderlich.".into(),
        },
        "invalid_type" if de => format!("Falscher Typ: erwartet {}, erhalten {}.", f("expected"), f("actual")),
        "invalid_type" => format!("Wrong type: expected {}, got {}.", f("expected"), f("actual")),
        "value_too_long" if de => format!("Wert ist zu lang. Höchstens {} Zeichen sind erlaubt.", f("maxLength")),
        "value_too_long" => format!("Value is too long. At most {} characters are allowed.", f("maxLength")),
        "value_too_short" if de => {
            format!("Wert ist zu kurz. Mindestens {} Zeichen sind erforderlich.", f("minLength"))
        }
        "value_too_short" => format!("Value is too short. At least {} characters are required.", f("minLength")),
        "invalid_format" if de => format!("Ungültiges Format, erwartet: {}.", f("format")),
        "invalid_format" => format!("Invalid format, expected: {}.", f("format")),
        "invalid_value" if de => format!("Ungültiger Wert. Erlaubt sind: {}.", f("allowedValues")),
        "invalid_value" => format!("Invalid value. Allowed values: {}.", f("allowedValues")),
        "invalid_characters" if de && !f("allowed").is_empty() => {
            format!("Ungültige Zeichen. Erlaubt sind: {}.", f("allowed"))
        }
        "invalid_characters" if !f("allowed").is_empty() => format!("Invalid characters. Allowed: {}.", f("allowed")),
        "invalid_characters" if de => "Steuerzeichen und Richtungsumschaltungen sind nicht erlaubt.".into(),
        "invalid_characters" => "Control characters and bidirectional overrides are not allowed.".into(),
        "value_out_of_bounds" if de => {
            format!("Wert außerhalb des Bereichs. Der Wert muss zwischen {} und {} liegen.", f("minimum"), f("maximum"))
        }
        "value_out_of_bounds" => {
            format!("Value out of bounds. Value must be between {} and {}.", f("minimum"), f("maximum"))
        }
        "invalid_amount_precision" if de => {
            format!("Zu viele Nachkommastellen: {} erlaubt höchstens {}.", f("currencyCode"), f("maxDecimals"))
        }
        "invalid_amount_precision" if !f("currencyCode").is_empty() => {
            format!("Too many decimals: {} allows at most {}.", f("currencyCode"), f("maxDecimals"))
        }
        "invalid_amount_precision" if de => {
            format!("Zu viele Nachkommastellen: höchstens {} erlaubt.", f("maxDecimals"))
        }
        "invalid_amount_precision" => format!("Too many decimals: at most {} allowed.", f("maxDecimals")),
        "unsupported_currency" if de => "Unbekannte oder nicht unterstützte Währung (ISO 4217).".into(),
        "unsupported_currency" => "Unknown or unsupported currency (ISO 4217).".into(),
        "unsupported_country" if de => format!("Unbekanntes Land, erwartet: {}.", f("standard")),
        "unsupported_country" => format!("Unknown country, expected: {}.", f("standard")),
        "too_many_items" if de => format!("Zu viele Einträge. Höchstens {} sind erlaubt.", f("maxItems")),
        "too_many_items" => format!("Too many items. At most {} are allowed.", f("maxItems")),
        "malformed_json" => {
            let detail = f("detail");
            if de {
                format!("Fehlerhaftes JSON: {} in Zeile {}, Spalte {}.", f("detailDe"), f("line"), f("column"))
            } else {
                format!("Malformed JSON: {detail} at line {} column {}.", f("line"), f("column"))
            }
        }
        "unsupported_media_type" if de => "Der Inhalt muss application/json sein.".into(),
        "unsupported_media_type" => "The body must be application/json.".into(),
        "payload_too_large" if de => format!("Der Inhalt ist zu groß. Höchstens {} Bytes sind erlaubt.", f("maxBytes")),
        "payload_too_large" => format!("The body is too large. At most {} bytes are allowed.", f("maxBytes")),
        "unauthorized" if de => "Sie sind für diese Anfrage nicht authentifiziert.".into(),
        "unauthorized" => "You are not authenticated to perform this request.".into(),
        "invalid_request" if de => "Die Authorization-Angabe ist fehlerhaft.".into(),
        "invalid_request" => "The Authorization header is malformed.".into(),
        "merchant_key_mismatch" if de => "merchantKey gehört nicht zu den verwendeten Zugangsdaten.".into(),
        "merchant_key_mismatch" => "merchantKey does not belong to the credentials used.".into(),
        "not_found" if de => "Nicht gefunden.".into(),
        "not_found" => "Not found.".into(),
        "method_not_allowed" if de => "Diese Methode ist hier nicht erlaubt.".into(),
        "method_not_allowed" => "This method is not allowed here.".into(),
        "idempotency_conflict" if de => "Dieser Schlüssel wurde bereits für eine andere Anfrage verwendet.".into(),
        "idempotency_conflict" => "This key was already used with a different request.".into(),
        "request_in_progress" if de => {
            "Eine Anfrage mit diesem Schlüssel wird gerade verarbeitet. Bitte später erneut versuchen.".into()
        }
        "request_in_progress" => "A request with this key is still being processed. Retry later.".into(),
        "invalid_header" if de => format!("Ungültiger Header: {}.", f("rule")),
        "invalid_header" => format!("Invalid header: {}.", f("rule")),
        "forbidden_origin" if de => "Diese Herkunft ist nicht erlaubt.".into(),
        "forbidden_origin" => "This origin is not allowed.".into(),
        "checkout_expired" if de => "Dieser Checkout ist abgelaufen.".into(),
        "checkout_expired" => "This checkout has expired.".into(),
        "rate_limited" if de => "Zu viele Anfragen. Bitte später erneut versuchen.".into(),
        "rate_limited" => "Too many requests. Retry later.".into(),
        "invalid_state" if de => format!("Im Status {} ist das nicht möglich.", f("paymentStatus")),
        "invalid_state" => format!("Not possible in status {}.", f("paymentStatus")),
        "checkout_locked" if de => "Zu viele Zahlungsversuche für diesen Checkout.".into(),
        "checkout_locked" => "Too many payment attempts on this checkout.".into(),
        "invalid_card_data" if de => "Ungültige Kartenangabe.".into(),
        "invalid_card_data" => "Invalid card data.".into(),
        "card_expired" if de => "Die Karte ist abgelaufen.".into(),
        "card_expired" => "The card has expired.".into(),
        "unsupported_card_brand" if de => "Diese Kartenmarke wird nicht unterstützt.".into(),
        "unsupported_card_brand" => "This card brand is not supported.".into(),
        "service_unavailable" if de => {
            "Der Dienst ist vorübergehend nicht verfügbar. Bitte später erneut versuchen.".into()
        }
        "service_unavailable" => "The service is temporarily unavailable. Retry later.".into(),
        "internal_error" if de => "Interner Fehler. Bitte die traceId an den Support geben.".into(),
        "internal_error" => "Internal error. Please give the traceId to support.".into(),
        other if de => format!("Fehler: {other}."),
        other => format!("Error: {other}."),
    }
}

/// A German rendering of a JSON syntax problem.
pub fn syntax_de(kind: &SyntaxErrorKind) -> String {
    match kind {
        SyntaxErrorKind::UnexpectedEnd => "unerwartetes Ende".into(),
        SyntaxErrorKind::UnexpectedCharacter(c) => format!("unerwartetes Zeichen {c:?}"),
        SyntaxErrorKind::TrailingComma => "überzähliges Komma".into(),
        SyntaxErrorKind::TrailingCharacters => "Zeichen nach dem JSON-Wert".into(),
        SyntaxErrorKind::InvalidNumber => "ungültige Zahl".into(),
        SyntaxErrorKind::InvalidEscape => "ungültige Escape-Sequenz".into(),
        SyntaxErrorKind::InvalidUnicode => "ungültiges Unicode-Escape".into(),
        SyntaxErrorKind::ControlCharacterInString => "Steuerzeichen in Zeichenkette".into(),
        SyntaxErrorKind::InvalidUtf8 => "ungültiges UTF-8".into(),
        SyntaxErrorKind::DuplicateKey(k) => format!("doppelter Schlüssel {k:?}"),
        SyntaxErrorKind::TooDeep => "zu tief verschachtelt".into(),
        SyntaxErrorKind::ExpectedColon => "':' erwartet".into(),
        SyntaxErrorKind::ExpectedCommaOrEnd => "',' oder schließende Klammer erwartet".into(),
        SyntaxErrorKind::KeyMustBeString => "Schlüssel müssen Zeichenketten sein".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_supported_language_wins() {
        assert_eq!(negotiate(None), Lang::En);
        assert_eq!(negotiate(Some("de-DE")), Lang::De);
        assert_eq!(negotiate(Some("de")), Lang::De);
        assert_eq!(negotiate(Some("en-US")), Lang::En);
        assert_eq!(negotiate(Some("fr-FR")), Lang::En);
        assert_eq!(negotiate(Some("fr-FR, de;q=0.8, en;q=0.5")), Lang::De);
        assert_eq!(negotiate(Some("en;q=0.4, de-DE;q=0.9")), Lang::De);
        assert_eq!(negotiate(Some("de;q=0, en")), Lang::En);
        assert_eq!(negotiate(Some(";;;,,,q=x")), Lang::En);
    }

    #[test]
    fn messages_name_the_rule_in_both_languages() {
        let p = Problem::new("value_too_long").at("consumer.firstName").with("maxLength", Fact::Int(60));
        assert_eq!(message(&p, Lang::En), "Value is too long. At most 60 characters are allowed.");
        assert_eq!(message(&p, Lang::De), "Wert ist zu lang. Höchstens 60 Zeichen sind erlaubt.");
        let u = Problem::new("unauthorized");
        assert_eq!(message(&u, Lang::En), "You are not authenticated to perform this request.");
    }
}
