//! The bodies of the modification endpoints — capture, refund, cancel, cancelOrRefund (reference
//! §3.3–§3.6) — as rule tables, and their validated form.

use crate::checkout::CUSTOM_REFERENCES;
use crate::json::Value;
use crate::modification::Request;
use crate::money::{self, Currency, Money};
use crate::schema::{self, Field, Kind, Outcome, Pass, Text};
use crate::violation::{Code, Violation};

const fn f(name: &'static str, kind: Kind, required: bool, description: &'static str) -> Field {
    Field { name, kind, required, aliases: &[], description }
}

/// `modifiedAmount`.
pub static MODIFIED_AMOUNT: &[Field] = &[
    f("amount", Kind::Amount { positive: true }, true, "Amount in major units, at most the currency's decimals."),
    f(
        "currencyCode",
        Kind::Str { min: 3, max: 3, text: Text::Currency },
        true,
        "ISO 4217; must be the payment's currency.",
    ),
    f("description", Kind::Str { min: 1, max: 127, text: Text::Any }, false, "Reason, e.g. partial capture."),
];

const TRANSACTION_ID: Field =
    f("transactionId", Kind::Str { min: 36, max: 36, text: Text::Uuid }, true, "The payment (UUID).");
const MERCHANT_KEY: Field =
    f("merchantKey", Kind::Str { min: 36, max: 36, text: Text::Uuid }, true, "Your merchantKey.");
const MODIFICATION_ID: Field = f(
    "modificationId",
    Kind::Str { min: 1, max: 64, text: Text::Charset("-_.:") },
    true,
    "Your id of this modification; the same id with the same body returns the first answer.",
);
const CUSTOM: Field = f("customReferences", Kind::Object(CUSTOM_REFERENCES), false, "custom1..custom3.");

/// Capture and refund (reference §3.3, §3.4).
pub static WITH_AMOUNT: &[Field] = &[
    TRANSACTION_ID,
    MERCHANT_KEY,
    MODIFICATION_ID,
    f("modifiedAmount", Kind::Object(MODIFIED_AMOUNT), false, "Leave out for the whole remaining amount."),
    CUSTOM,
];

/// Cancel and cancelOrRefund (reference §3.5, §3.6).
pub static WITHOUT_AMOUNT: &[Field] = &[
    TRANSACTION_ID,
    MERCHANT_KEY,
    MODIFICATION_ID,
    f("description", Kind::Str { min: 1, max: 127, text: Text::Any }, false, "Reason."),
    CUSTOM,
];

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Capture,
    Refund,
    Cancel,
    CancelOrRefund,
}

impl Operation {
    pub fn fields(self) -> &'static [Field] {
        match self {
            Self::Capture | Self::Refund => WITH_AMOUNT,
            Self::Cancel | Self::CancelOrRefund => WITHOUT_AMOUNT,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Self::Capture => "/payment/capture",
            Self::Refund => "/payment/refund",
            Self::Cancel => "/payment/cancel",
            Self::CancelOrRefund => "/payment/cancelOrRefund",
        }
    }
}

/// A valid modification request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidModification {
    pub transaction_id: String,
    pub merchant_key: String,
    pub modification_id: String,
    pub request: Request,
    /// `modifiedAmount`, when given (its currency is checked against the payment's later).
    pub amount: Option<Money>,
    pub description: Option<String>,
    pub custom_references_json: Option<String>,
    /// The recognized request in canonical form, for the `modificationId` fingerprint.
    pub canonical: String,
    pub ignored: Vec<String>,
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |cur, p| cur.get(p))?.as_str()
}

/// Validates a modification body, reporting every violation at once.
pub fn validate(op: Operation, body: &Value) -> Result<ValidModification, (Vec<Violation>, Vec<String>)> {
    let mut out = Outcome::default();
    let currency = text(body, &["modifiedAmount", "currencyCode"]).and_then(Currency::from_code);
    schema::check_object(op.fields(), body, "", &mut Pass { currency, out: &mut out });
    if !out.violations.is_empty() {
        return Err((out.violations, out.ignored));
    }
    let amount = match (currency, body.get("modifiedAmount").and_then(|m| m.get("amount"))) {
        (Some(currency), Some(Value::Number(t))) => {
            let minor = money::parse_minor(t, currency.exponent()).map_err(|_| {
                (vec![Violation::new(Code::ValueOutOfBounds, "modifiedAmount.amount")], out.ignored.clone())
            })?;
            Some(Money { minor, currency })
        }
        _ => None,
    };
    let minor = amount.map(|m| m.minor);
    let request = match op {
        Operation::Capture => Request::Capture(minor),
        Operation::Refund => Request::Refund(minor),
        Operation::Cancel => Request::Cancel,
        Operation::CancelOrRefund => Request::CancelOrRefund,
    };
    let mut canonical = String::from(op.path());
    schema::canonical(op.fields(), body, currency, &mut canonical);
    let custom_references_json = body.get("customReferences").filter(|v| **v != Value::Null).map(|v| {
        let mut s = String::new();
        schema::canonical(CUSTOM_REFERENCES, v, None, &mut s);
        s
    });
    let owned = |path: &[&str]| text(body, path).map(str::to_owned);
    Ok(ValidModification {
        transaction_id: owned(&["transactionId"]).unwrap_or_default().to_ascii_lowercase(),
        merchant_key: owned(&["merchantKey"]).unwrap_or_default().to_ascii_lowercase(),
        modification_id: owned(&["modificationId"]).unwrap_or_default(),
        request,
        amount,
        description: owned(&["modifiedAmount", "description"]).or_else(|| owned(&["description"])),
        custom_references_json,
        canonical,
        ignored: out.ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    const TX: &str = "933a0fab-80a0-42c5-b010-c71174f4ab32";
    const MK: &str = "31928de9-1344-469f-b0eb-8e5d0fef3d21";

    #[test]
    fn the_references_examples_are_valid() {
        let full = format!(r#"{{"transactionId":"{TX}","merchantKey":"{MK}","modificationId":"ab5df182-e642"}}"#);
        let v = validate(Operation::Capture, &parse(full.as_bytes()).unwrap()).unwrap();
        assert_eq!(v.request, Request::Capture(None));
        let partial = format!(
            r#"{{"merchantKey":"{MK}","transactionId":"{TX}","modificationId":"f7c5","modifiedAmount":{{"amount":10,"currencyCode":"EUR","description":"partial capture"}}}}"#
        );
        let v = validate(Operation::Refund, &parse(partial.as_bytes()).unwrap()).unwrap();
        assert_eq!(v.request, Request::Refund(Some(1000)));
        assert_eq!(v.description.as_deref(), Some("partial capture"));
    }

    #[test]
    fn every_violation_is_named_with_its_property() {
        let bad = r#"{"transactionId":"nope","modificationId":"","modifiedAmount":{"amount":1.234,"currencyCode":"EUR"},"shoe":1}"#;
        let (violations, ignored) = validate(Operation::Capture, &parse(bad.as_bytes()).unwrap()).unwrap_err();
        let props: Vec<&str> = violations.iter().map(|v| v.property.as_str()).collect();
        for p in ["transactionId", "merchantKey", "modificationId", "modifiedAmount.amount"] {
            assert!(props.contains(&p), "{p} in {props:?}");
        }
        assert_eq!(ignored, vec!["shoe".to_owned()]);
        let amount = format!(
            r#"{{"transactionId":"{TX}","merchantKey":"{MK}","modificationId":"x","modifiedAmount":{{"amount":-1,"currencyCode":"EUR"}}}}"#
        );
        assert!(validate(Operation::Refund, &parse(amount.as_bytes()).unwrap()).is_err(), "amounts are positive");
    }

    #[test]
    fn the_fingerprint_ignores_formatting_but_not_meaning() {
        let a = format!(
            r#"{{"transactionId":"{TX}","merchantKey":"{MK}","modificationId":"m","modifiedAmount":{{"amount":10.5,"currencyCode":"EUR"}}}}"#
        );
        let b = format!(
            r#"{{ "modifiedAmount": {{"currencyCode":"EUR","amount":10.50}}, "modificationId":"m","merchantKey":"{MK}","transactionId":"{TX}" }}"#
        );
        let c = a.replace("10.5", "10.6");
        let canon = |s: &str| validate(Operation::Capture, &parse(s.as_bytes()).unwrap()).unwrap().canonical;
        assert_eq!(canon(&a), canon(&b));
        assert_ne!(canon(&a), canon(&c));
        let refund = validate(Operation::Refund, &parse(a.as_bytes()).unwrap()).unwrap().canonical;
        assert_ne!(canon(&a), refund, "the same body to another endpoint is another request");
    }
}
