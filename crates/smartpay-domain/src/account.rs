//! Vault accounts' requests (reference §3.13, §3.14): Update Account and Store Payment Option,
//! as rule tables for the schema engine, and their validated forms.

use crate::card::{CardError, CardNumber, Expiry};
use crate::json::Value;
use crate::schema::{self, Field, Kind, Outcome, Pass, Text};
use crate::violation::{Code, Fact, Violation};

const fn f(name: &'static str, kind: Kind, required: bool, description: &'static str) -> Field {
    Field { name, kind, required, aliases: &[], description }
}

const fn s(max: usize) -> Kind {
    Kind::Str { min: 1, max, text: Text::Any }
}

const fn st(min: usize, max: usize, text: Text) -> Kind {
    Kind::Str { min, max, text }
}

/// The longest `customerAccountId` (reference §1.2).
pub const MAX_ACCOUNT_ID: usize = 255;

/// billingAddress of Update Account and Store Payment Option: ISO-3 country codes (§3.14).
pub static ACCOUNT_ADDRESS: &[Field] = &[
    f("addressLine1", s(60), true, "Street name."),
    f("addressLine2", s(60), false, "Apartment, suite, unit."),
    f("addressLine3", s(60), false, "Delivery instructions, department, floor."),
    f("number", s(10), false, "House number."),
    f("city", s(50), true, "City."),
    f("postCode", s(10), true, "Postal code."),
    f("countryCode", st(3, 3, Text::Country23), true, "ISO 3166-1 alpha-3, e.g. DEU."),
    f("state", s(3), false, "State or province; mandatory for USA and CAN."),
];

/// consumer of Update Account.
pub static ACCOUNT_CONSUMER: &[Field] = &[
    f("culture", st(1, 5, Text::Culture), false, "Preferred culture, ll-CC (e.g. de-DE)."),
    f("dateOfBirth", st(10, 10, Text::Date), false, "YYYY-MM-DD, from 1900-01-01."),
    f("emailAddress", st(1, 255, Text::Email), false, "E-mail address."),
];

/// Update Account (§3.14).
pub static UPDATE_ACCOUNT: &[Field] = &[
    f("billingAddress", Kind::Object(ACCOUNT_ADDRESS), true, "The account holder's billing address."),
    f("consumer", Kind::Object(ACCOUNT_CONSUMER), true, "The account holder."),
];

static THREE_DS2: &[Field] = &[
    f("acsEci", st(2, 2, Text::Charset("")), true, "Electronic commerce indicator, 2 digits (e.g. 02)."),
    f("acsTransactionId", s(100), false, "The ACS transaction id."),
    f("authenticationToken", s(64), true, "The authentication value (CAVV)."),
    f("dsTransactionId", st(1, 100, Text::Any), false, "The directory server's transaction id."),
    f("protocolVersion", s(10), false, "3-D Secure protocol version, e.g. 2.2.0."),
    f("transactionStatus", st(1, 1, Text::OneOf(&["Y", "A", "N", "U", "R", "C"])), true, "Y or A: authenticated."),
];

static THREE_DS: &[Field] = &[f("3DS2", Kind::Object(THREE_DS2), true, "The ADD_CARD 3-D Secure 2 authentication.")];

static CARD_DETAILS: &[Field] = &[
    f(
        "cardNumber",
        st(12, 19, Text::Charset("")),
        true,
        "The card number, digits only (SmartPay is its own PCI vault).",
    ),
    f("cardBrand", s(16), false, "VISA, MASTERCARD or AMEX; checked against the number."),
    f("cardExpiryMonth", st(2, 2, Text::Charset("")), true, "MM."),
    f("cardExpiryYear", st(4, 4, Text::Charset("")), true, "YYYY."),
    f("cardHolderName", s(64), false, "As on the card."),
];

static CARD: &[Field] = &[
    f("3DS", Kind::Object(THREE_DS), true, "The card's 3-D Secure authentication for storing (purpose ADD_CARD)."),
    f("cardDetails", Kind::Object(CARD_DETAILS), true, "The card."),
];

static PAYMENT_OPTION: &[Field] = &[f("card", Kind::Object(CARD), true, "A card to store.")];

/// Store Payment Option (§3.13).
pub static STORE_OPTION: &[Field] = &[
    f("paymentOption", Kind::Object(PAYMENT_OPTION), true, "The payment option to store."),
    f("billingAddress", Kind::Object(ACCOUNT_ADDRESS), true, "The card holder's billing address."),
];

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |cur, p| cur.get(p))?.as_str()
}

/// Checks a `customerAccountId` from a path.
pub fn check_account_id(id: &str) -> Result<(), Violation> {
    if id.is_empty() || id.chars().count() > MAX_ACCOUNT_ID || id.chars().any(schema::is_forbidden_char) {
        return Err(
            Violation::new(Code::InvalidValue, "customerAccountId").with("maxLength", Fact::Int(MAX_ACCOUNT_ID as i64))
        );
    }
    Ok(())
}

/// The state is mandatory for addresses in the USA and Canada.
fn check_state(address: Option<&Value>, path: &str, out: &mut Outcome) {
    let Some(a) = address else { return };
    let country = a.get("countryCode").and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase();
    if matches!(country.as_str(), "USA" | "CAN") && a.get("state").and_then(Value::as_str).is_none() {
        out.violations.push(Violation::new(Code::MissingProperty, format!("{path}.state")));
    }
}

/// A valid Update Account: canonical JSON of its two parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUpdate {
    pub billing_address: String,
    pub consumer: String,
    pub ignored: Vec<String>,
}

/// Validates Update Account, reporting every violation at once.
pub fn validate_update(body: &Value) -> Result<AccountUpdate, (Vec<Violation>, Vec<String>)> {
    let mut out = Outcome::default();
    schema::check_object(UPDATE_ACCOUNT, body, "", &mut Pass { currency: None, out: &mut out });
    check_state(body.get("billingAddress"), "billingAddress", &mut out);
    if !out.violations.is_empty() {
        return Err((out.violations, out.ignored));
    }
    let canonical = |fields: &[Field], v: Option<&Value>| {
        let mut s = String::new();
        if let Some(v) = v {
            schema::canonical(fields, v, None, &mut s);
        }
        s
    };
    Ok(AccountUpdate {
        billing_address: canonical(ACCOUNT_ADDRESS, body.get("billingAddress")),
        consumer: canonical(ACCOUNT_CONSUMER, body.get("consumer")),
        ignored: out.ignored,
    })
}

/// A valid Store Payment Option: the card, checked.
#[derive(Debug)]
pub struct OptionToStore {
    pub number: CardNumber,
    pub brand: &'static str,
    pub expiry: Expiry,
    pub holder: Option<String>,
    pub ignored: Vec<String>,
}

fn card_violation(e: CardError, path: &str) -> Violation {
    let code = match e {
        CardError::Expired => Code::ValueOutOfBounds,
        _ => Code::InvalidValue,
    };
    Violation::new(code, path)
}

/// Validates Store Payment Option against this month (card expiry), reporting every violation.
pub fn validate_store(body: &Value, this_month: (i64, u32)) -> Result<OptionToStore, (Vec<Violation>, Vec<String>)> {
    let mut out = Outcome::default();
    schema::check_object(STORE_OPTION, body, "", &mut Pass { currency: None, out: &mut out });
    check_state(body.get("billingAddress"), "billingAddress", &mut out);
    let details = ["paymentOption", "card", "cardDetails"];
    let at = |name: &str| format!("paymentOption.card.cardDetails.{name}");
    let status = text(body, &["paymentOption", "card", "3DS", "3DS2", "transactionStatus"]);
    if status.is_some_and(|s| !matches!(s, "Y" | "A")) {
        out.violations.push(
            Violation::new(Code::InvalidValue, "paymentOption.card.3DS.3DS2.transactionStatus")
                .with("allowed", Fact::Text("Y or A (the card holder was authenticated)".into())),
        );
    }
    let field = |name: &str| text(body, &[details[0], details[1], details[2], name]);
    let number = field("cardNumber").and_then(|n| match CardNumber::parse(n) {
        Ok(n) => Some(n),
        Err(e) => {
            out.violations.push(card_violation(e, &at("cardNumber")));
            None
        }
    });
    let expiry = match (field("cardExpiryMonth"), field("cardExpiryYear")) {
        (Some(m), Some(y)) if y.len() == 4 => match Expiry::parse(&format!("{m}/{}", &y[2..]), this_month) {
            Ok(e) => Some(e),
            Err(e) => {
                out.violations.push(card_violation(e, &at("cardExpiryYear")));
                None
            }
        },
        _ => None,
    };
    if let (Some((_, brand)), Some(claimed)) = (&number, field("cardBrand")) {
        let same = match claimed.to_ascii_uppercase().as_str() {
            "MASTERCARD" | "MSTRCRD" => brand.code() == "MSTRCRD",
            other => brand.code() == other,
        };
        if !same {
            out.violations.push(Violation::new(Code::InvalidValue, at("cardBrand")));
        }
    }
    match (number, expiry) {
        (Some((number, brand)), Some(expiry)) if out.violations.is_empty() => Ok(OptionToStore {
            number,
            brand: brand.code(),
            expiry,
            holder: field("cardHolderName").map(str::to_owned),
            ignored: out.ignored,
        }),
        _ => Err((out.violations, out.ignored)),
    }
}
