//! Error messages in `en-US` and `de-DE`, chosen by `Accept-Language` (RFC 9110 §12.5.4). Each
//! language is one exhaustive `match` over [`ErrorCode`]: a code without a text does not compile,
//! and a message whose facts are missing falls back to a shorter sentence instead of a gap.

use smartpay_domain::json::SyntaxErrorKind;
use smartpay_domain::violation::Fact;

use crate::error::{ErrorCode, Problem};

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

/// The fact under `key` as message text; `None` when absent or empty, so a message never shows a
/// gap where a fact would be.
fn fact(p: &Problem, key: &str) -> Option<String> {
    let text = match p.context.iter().find(|(k, _)| *k == key).map(|(_, f)| f)? {
        Fact::Int(i) => i.to_string(),
        Fact::Text(t) => t.clone(),
        Fact::List(l) => l.join(", "),
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The message for a problem.
pub fn message(p: &Problem, lang: Lang) -> String {
    match lang {
        Lang::En => en(p.code, p),
        Lang::De => de(p.code, p),
    }
}

/// English messages: one arm per code, so a new code does not compile without its text.
fn en(code: ErrorCode, p: &Problem) -> String {
    let f = |k: &str| fact(p, k);
    match code {
        ErrorCode::MissingProperty => match f("alternative") {
            Some(alt) => format!("A value is required here, or in {alt}."),
            None => "A value is required.".into(),
        },
        ErrorCode::InvalidType => match (f("expected"), f("actual")) {
            (Some(e), Some(a)) => format!("Wrong type: expected {e}, got {a}."),
            (Some(e), None) => format!("Wrong type: expected {e}."),
            (None, _) => "Wrong type.".into(),
        },
        ErrorCode::ValueTooLong => match f("maxLength") {
            Some(n) => format!("Value is too long. At most {n} characters are allowed."),
            None => "Value is too long.".into(),
        },
        ErrorCode::ValueTooShort => match f("minLength") {
            Some(n) => format!("Value is too short. At least {n} characters are required."),
            None => "Value is too short.".into(),
        },
        ErrorCode::InvalidFormat => match f("format") {
            Some(fmt) => format!("Invalid format, expected: {fmt}."),
            None => "Invalid format.".into(),
        },
        ErrorCode::InvalidValue => match f("allowedValues") {
            Some(v) => format!("Invalid value. Allowed values: {v}."),
            None => "Invalid value.".into(),
        },
        ErrorCode::InvalidCharacters => match f("allowed") {
            Some(a) => format!("Invalid characters. Allowed: {a}."),
            None => "Control characters and bidirectional overrides are not allowed.".into(),
        },
        ErrorCode::ValueOutOfBounds => match (f("minimum"), f("maximum")) {
            (Some(min), Some(max)) => format!("Value out of bounds. Value must be between {min} and {max}."),
            _ => "Value out of bounds.".into(),
        },
        ErrorCode::InvalidAmountPrecision => match (f("currencyCode"), f("maxDecimals")) {
            (Some(c), Some(n)) => format!("Too many decimals: {c} allows at most {n}."),
            (None, Some(n)) => format!("Too many decimals: at most {n} allowed."),
            (_, None) => "Too many decimals.".into(),
        },
        ErrorCode::UnsupportedCurrency => "Unknown or unsupported currency (ISO 4217).".into(),
        ErrorCode::UnsupportedCountry => match f("standard") {
            Some(s) => format!("Unknown country, expected: {s}."),
            None => "Unknown country.".into(),
        },
        ErrorCode::TooManyItems => match f("maxItems") {
            Some(n) => format!("Too many items. At most {n} are allowed."),
            None => "Too many items.".into(),
        },
        ErrorCode::ConflictingProperties => "These properties cannot be used together.".into(),
        ErrorCode::MalformedJson => match (f("detail"), f("line"), f("column")) {
            (Some(d), Some(l), Some(c)) => format!("Malformed JSON: {d} at line {l} column {c}."),
            (Some(d), _, _) => format!("Malformed JSON: {d}."),
            (None, _, _) => "Malformed JSON.".into(),
        },
        ErrorCode::InvalidHeader => match f("rule") {
            Some(r) => format!("Invalid header: {r}."),
            None => "Invalid header.".into(),
        },
        ErrorCode::InvalidRequest => "The Authorization header is malformed.".into(),
        ErrorCode::UnsupportedMediaType => "The body must be application/json.".into(),
        ErrorCode::PayloadTooLarge => match f("maxBytes") {
            Some(n) => format!("The body is too large. At most {n} bytes are allowed."),
            None => "The body is too large.".into(),
        },
        ErrorCode::Unauthorized => "You are not authenticated to perform this request.".into(),
        ErrorCode::MerchantKeyMismatch => "merchantKey does not belong to the credentials used.".into(),
        ErrorCode::NotFound => "Not found.".into(),
        ErrorCode::MethodNotAllowed => "This method is not allowed here.".into(),
        ErrorCode::IdempotencyConflict => "This key was already used with a different request.".into(),
        ErrorCode::RequestInProgress => "A request with this key is still being processed. Retry later.".into(),
        ErrorCode::ForbiddenOrigin => "This origin is not allowed.".into(),
        ErrorCode::CheckoutExpired => "This checkout has expired.".into(),
        ErrorCode::RateLimited => "Too many requests. Retry later.".into(),
        ErrorCode::InvalidState => match f("paymentStatus") {
            Some(s) => format!("Not possible in status {s}."),
            None => "Not possible in the payment's current status.".into(),
        },
        ErrorCode::CheckoutLocked => "Too many payment attempts on this checkout.".into(),
        ErrorCode::InvalidCardData => "Invalid card data.".into(),
        ErrorCode::CardExpired => "The card has expired.".into(),
        ErrorCode::UnsupportedCardBrand => "This card brand is not supported.".into(),
        ErrorCode::AmountExceedsCapturable => match (f("remaining"), f("currencyCode")) {
            (Some(r), Some(c)) => format!("The amount exceeds what can still be captured: {r} {c}."),
            _ => "The amount exceeds what can still be captured.".into(),
        },
        ErrorCode::AmountExceedsRefundable => match (f("remaining"), f("currencyCode")) {
            (Some(r), Some(c)) => format!("The amount exceeds what can still be refunded: {r} {c}."),
            _ => "The amount exceeds what can still be refunded.".into(),
        },
        ErrorCode::CurrencyMismatch => match f("expected") {
            Some(c) => format!("The currency must be the payment's: {c}."),
            None => "The currency must be the payment's.".into(),
        },
        ErrorCode::RequestTimeout => "The request took too long to arrive or to answer. Retry it.".into(),
        ErrorCode::ServiceUnavailable => "The service is temporarily unavailable. Retry later.".into(),
        ErrorCode::VaultUnavailable => "Stored payment options are unavailable right now. Retry later.".into(),
        ErrorCode::InternalError => "Internal error. Please give the traceId to support.".into(),
    }
}

/// German messages: one arm per code, so a new code does not compile without its text.
fn de(code: ErrorCode, p: &Problem) -> String {
    let f = |k: &str| fact(p, k);
    match code {
        ErrorCode::MissingProperty => match f("alternative") {
            Some(alt) => format!("Hier oder in {alt} ist ein Wert erforderlich."),
            None => "Ein Wert ist erforderlich.".into(),
        },
        ErrorCode::InvalidType => match (f("expected"), f("actual")) {
            (Some(e), Some(a)) => format!("Falscher Typ: erwartet {e}, erhalten {a}."),
            (Some(e), None) => format!("Falscher Typ: erwartet {e}."),
            (None, _) => "Falscher Typ.".into(),
        },
        ErrorCode::ValueTooLong => match f("maxLength") {
            Some(n) => format!("Wert ist zu lang. Höchstens {n} Zeichen sind erlaubt."),
            None => "Wert ist zu lang.".into(),
        },
        ErrorCode::ValueTooShort => match f("minLength") {
            Some(n) => format!("Wert ist zu kurz. Mindestens {n} Zeichen sind erforderlich."),
            None => "Wert ist zu kurz.".into(),
        },
        ErrorCode::InvalidFormat => match f("format") {
            Some(fmt) => format!("Ungültiges Format, erwartet: {fmt}."),
            None => "Ungültiges Format.".into(),
        },
        ErrorCode::InvalidValue => match f("allowedValues") {
            Some(v) => format!("Ungültiger Wert. Erlaubt sind: {v}."),
            None => "Ungültiger Wert.".into(),
        },
        ErrorCode::InvalidCharacters => match f("allowed") {
            Some(a) => format!("Ungültige Zeichen. Erlaubt sind: {a}."),
            None => "Steuerzeichen und Richtungsumschaltungen sind nicht erlaubt.".into(),
        },
        ErrorCode::ValueOutOfBounds => match (f("minimum"), f("maximum")) {
            (Some(min), Some(max)) => {
                format!("Wert außerhalb des Bereichs. Der Wert muss zwischen {min} und {max} liegen.")
            }
            _ => "Wert außerhalb des Bereichs.".into(),
        },
        ErrorCode::InvalidAmountPrecision => match (f("currencyCode"), f("maxDecimals")) {
            (Some(c), Some(n)) => format!("Zu viele Nachkommastellen: {c} erlaubt höchstens {n}."),
            (None, Some(n)) => format!("Zu viele Nachkommastellen: höchstens {n} erlaubt."),
            (_, None) => "Zu viele Nachkommastellen.".into(),
        },
        ErrorCode::UnsupportedCurrency => "Unbekannte oder nicht unterstützte Währung (ISO 4217).".into(),
        ErrorCode::UnsupportedCountry => match f("standard") {
            Some(s) => format!("Unbekanntes Land, erwartet: {s}."),
            None => "Unbekanntes Land.".into(),
        },
        ErrorCode::TooManyItems => match f("maxItems") {
            Some(n) => format!("Zu viele Einträge. Höchstens {n} sind erlaubt."),
            None => "Zu viele Einträge.".into(),
        },
        ErrorCode::ConflictingProperties => "Diese Angaben können nicht zusammen verwendet werden.".into(),
        ErrorCode::MalformedJson => match (f("detailDe"), f("line"), f("column")) {
            (Some(d), Some(l), Some(c)) => format!("Fehlerhaftes JSON: {d} in Zeile {l}, Spalte {c}."),
            (Some(d), _, _) => format!("Fehlerhaftes JSON: {d}."),
            (None, _, _) => "Fehlerhaftes JSON.".into(),
        },
        ErrorCode::InvalidHeader => match f("rule") {
            Some(r) => format!("Ungültiger Header: {r}."),
            None => "Ungültiger Header.".into(),
        },
        ErrorCode::InvalidRequest => "Die Authorization-Angabe ist fehlerhaft.".into(),
        ErrorCode::UnsupportedMediaType => "Der Inhalt muss application/json sein.".into(),
        ErrorCode::PayloadTooLarge => match f("maxBytes") {
            Some(n) => format!("Der Inhalt ist zu groß. Höchstens {n} Bytes sind erlaubt."),
            None => "Der Inhalt ist zu groß.".into(),
        },
        ErrorCode::Unauthorized => "Sie sind für diese Anfrage nicht authentifiziert.".into(),
        ErrorCode::MerchantKeyMismatch => "merchantKey gehört nicht zu den verwendeten Zugangsdaten.".into(),
        ErrorCode::NotFound => "Nicht gefunden.".into(),
        ErrorCode::MethodNotAllowed => "Diese Methode ist hier nicht erlaubt.".into(),
        ErrorCode::IdempotencyConflict => "Dieser Schlüssel wurde bereits für eine andere Anfrage verwendet.".into(),
        ErrorCode::RequestInProgress => {
            "Eine Anfrage mit diesem Schlüssel wird gerade verarbeitet. Bitte später erneut versuchen.".into()
        }
        ErrorCode::ForbiddenOrigin => "Diese Herkunft ist nicht erlaubt.".into(),
        ErrorCode::CheckoutExpired => "Dieser Checkout ist abgelaufen.".into(),
        ErrorCode::RateLimited => "Zu viele Anfragen. Bitte später erneut versuchen.".into(),
        ErrorCode::InvalidState => match f("paymentStatus") {
            Some(s) => format!("Im Status {s} ist das nicht möglich."),
            None => "Im aktuellen Status der Zahlung ist das nicht möglich.".into(),
        },
        ErrorCode::CheckoutLocked => "Zu viele Zahlungsversuche für diesen Checkout.".into(),
        ErrorCode::InvalidCardData => "Ungültige Kartenangabe.".into(),
        ErrorCode::CardExpired => "Die Karte ist abgelaufen.".into(),
        ErrorCode::UnsupportedCardBrand => "Diese Kartenmarke wird nicht unterstützt.".into(),
        ErrorCode::AmountExceedsCapturable => match (f("remaining"), f("currencyCode")) {
            (Some(r), Some(c)) => format!("Der Betrag übersteigt, was noch erfasst werden kann: {r} {c}."),
            _ => "Der Betrag übersteigt, was noch erfasst werden kann.".into(),
        },
        ErrorCode::AmountExceedsRefundable => match (f("remaining"), f("currencyCode")) {
            (Some(r), Some(c)) => format!("Der Betrag übersteigt, was noch erstattet werden kann: {r} {c}."),
            _ => "Der Betrag übersteigt, was noch erstattet werden kann.".into(),
        },
        ErrorCode::CurrencyMismatch => match f("expected") {
            Some(c) => format!("Die Währung muss die der Zahlung sein: {c}."),
            None => "Die Währung muss die der Zahlung sein.".into(),
        },
        ErrorCode::RequestTimeout => {
            "Die Anfrage kam nicht rechtzeitig an oder wurde nicht rechtzeitig beantwortet. Bitte erneut senden.".into()
        }
        ErrorCode::ServiceUnavailable => {
            "Der Dienst ist vorübergehend nicht verfügbar. Bitte später erneut versuchen.".into()
        }
        ErrorCode::VaultUnavailable => {
            "Gespeicherte Zahlungsmittel sind gerade nicht verfügbar. Bitte später erneut versuchen.".into()
        }
        ErrorCode::InternalError => "Interner Fehler. Bitte die traceId an den Support geben.".into(),
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
        let p = Problem::new(ErrorCode::ValueTooLong).at("consumer.firstName").with("maxLength", Fact::Int(60));
        assert_eq!(message(&p, Lang::En), "Value is too long. At most 60 characters are allowed.");
        assert_eq!(message(&p, Lang::De), "Wert ist zu lang. Höchstens 60 Zeichen sind erlaubt.");
        let u = Problem::new(ErrorCode::Unauthorized);
        assert_eq!(message(&u, Lang::En), "You are not authenticated to perform this request.");
        assert_eq!(message(&u, Lang::De), "Sie sind für diese Anfrage nicht authentifiziert.");
    }

    #[test]
    fn precision_messages_name_the_currency_when_there_is_one_in_both_languages() {
        let amount = Problem::new(ErrorCode::InvalidAmountPrecision)
            .at("payment.amount")
            .with("currencyCode", Fact::Text("EUR".into()))
            .with("maxDecimals", Fact::Int(2));
        assert_eq!(message(&amount, Lang::En), "Too many decimals: EUR allows at most 2.");
        assert_eq!(message(&amount, Lang::De), "Zu viele Nachkommastellen: EUR erlaubt höchstens 2.");
        let vat = Problem::new(ErrorCode::InvalidAmountPrecision)
            .at("order.lines[0].vatRate")
            .with("maxDecimals", Fact::Int(2));
        assert_eq!(message(&vat, Lang::En), "Too many decimals: at most 2 allowed.");
        assert_eq!(message(&vat, Lang::De), "Zu viele Nachkommastellen: höchstens 2 erlaubt.");
    }

    /// Every fact key a message reads, with a plausible value.
    fn all_facts(p: Problem) -> Problem {
        [
            ("alternative", Fact::Text("order.reference".into())),
            ("expected", Fact::Text("string".into())),
            ("actual", Fact::Text("number".into())),
            ("maxLength", Fact::Int(60)),
            ("minLength", Fact::Int(1)),
            ("format", Fact::Text("uuid".into())),
            ("allowedValues", Fact::List(vec!["A".into(), "B".into()])),
            ("allowed", Fact::Text("A-Z".into())),
            ("minimum", Fact::Int(0)),
            ("maximum", Fact::Int(100)),
            ("currencyCode", Fact::Text("EUR".into())),
            ("maxDecimals", Fact::Int(2)),
            ("standard", Fact::Text("ISO 3166-1 alpha-2".into())),
            ("maxItems", Fact::Int(10)),
            ("detail", Fact::Text("trailing comma".into())),
            ("detailDe", Fact::Text("überzähliges Komma".into())),
            ("line", Fact::Int(3)),
            ("column", Fact::Int(7)),
            ("rule", Fact::Text("at most 512 characters".into())),
            ("maxBytes", Fact::Int(65536)),
            ("paymentStatus", Fact::Text("AUTHORIZED".into())),
        ]
        .into_iter()
        .fold(p, |p, (k, f)| p.with(k, f))
    }

    #[test]
    fn every_code_has_a_clean_sentence_in_both_languages_with_or_without_facts() {
        for code in ErrorCode::ALL {
            for problem in [Problem::new(code), all_facts(Problem::new(code))] {
                for lang in [Lang::En, Lang::De] {
                    let m = message(&problem, lang);
                    let at = format!("{} in {lang:?}: {m:?}", code.as_str());
                    assert!(!m.trim().is_empty(), "{at}");
                    assert!(!m.contains("{}") && !m.contains('{') && !m.contains('}'), "{at}");
                    assert!(!m.contains("  "), "{at}");
                    assert!(!m.contains(" .") && !m.contains(" ,") && !m.contains(": ."), "{at}");
                    assert!(m.ends_with('.'), "{at}");
                }
            }
        }
    }

    #[test]
    fn the_two_languages_differ_for_every_code() {
        for code in ErrorCode::ALL {
            let p = all_facts(Problem::new(code));
            assert_ne!(message(&p, Lang::En), message(&p, Lang::De), "{}", code.as_str());
        }
    }
}
