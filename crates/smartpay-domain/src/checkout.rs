//! Create Checkout: the request's rules (reference §3.1 and §4.6) and its validated form.

use crate::json::Value;
use crate::money::{self, Currency, Money};
use crate::schema::{self, Field, Kind, Outcome, Pass, Text};
use crate::violation::{Code, Fact, Violation};

const fn f(name: &'static str, kind: Kind, required: bool, description: &'static str) -> Field {
    Field { name, kind, required, aliases: &[], description }
}

const fn s(max: usize) -> Kind {
    Kind::Str { min: 1, max, text: Text::Any }
}

const fn st(max: usize, text: Text) -> Kind {
    Kind::Str { min: 1, max, text }
}

/// Payment (reference §4.6).
pub static PAYMENT: &[Field] = &[
    f(
        "amount",
        Kind::Amount { positive: true },
        true,
        "Amount in major units of the currency (e.g. 10.99); exact, at most the currency's decimals.",
    ),
    f("currencyCode", st(3, Text::Currency), true, "ISO 4217 currency code, e.g. EUR."),
    f("description", s(127), true, "Reason for payment, shown to the customer."),
];

/// Address (billingAddress, shippingAddress).
pub static ADDRESS: &[Field] = &[
    Field { name: "addressLine1", kind: s(60), required: true, aliases: &["address"], description: "Street name." },
    f("addressLine2", s(60), false, "Apartment, suite, unit."),
    f("addressLine3", s(60), false, "Delivery instructions, department, floor."),
    f("number", s(10), false, "House number."),
    f("city", s(50), true, "City."),
    f("postCode", s(10), true, "Postal code."),
    f("countryCode", Kind::Str { min: 2, max: 3, text: Text::Country23 }, true, "ISO 3166-1 alpha-2 or alpha-3."),
    f("state", s(3), false, "State or province; required when the country is US/USA/CA/CAN."),
    f("homePhone", s(30), false, "Phone number (legacy)."),
];

pub static CONSUMER: &[Field] = &[
    f("firstName", s(60), true, "First name."),
    f("lastName", s(60), true, "Last name."),
    f("middleName", s(60), false, "Middle name."),
    f("emailAddress", st(255, Text::Email), true, "E-mail address."),
    f("title", st(3, Text::OneOf(&["Mr", "Mrs", "Ms"])), false, "Mr, Mrs or Ms (any case)."),
    f("culture", st(5, Text::Culture), false, "Preferred culture, ll-CC (e.g. de-DE)."),
    f("dateOfBirth", st(10, Text::Date), false, "YYYY-MM-DD, from 1900-01-01."),
    f("gender", st(1, Text::OneOf(&["M", "F", "D"])), false, "M, F or D (any case)."),
    f("mobilePhone", s(30), false, "Mobile phone number."),
    f("taxId", s(30), false, "Tax id."),
];

pub static BUSINESS_CONSUMER: &[Field] = &[
    f("companyName", s(100), true, "Company name."),
    f("companyType", s(100), true, "Company type, e.g. GmbH."),
    f("emailAddress", st(255, Text::Email), true, "E-mail address."),
    f("taxId", s(30), false, "Tax id."),
    f("culture", st(5, Text::Culture), false, "Preferred culture, ll-CC."),
    f("companyRegistrationNumber", s(50), false, "Registration number."),
    f(
        "companyRegistrationCountryCode",
        Kind::Str { min: 2, max: 3, text: Text::Country23 },
        false,
        "ISO 3166-1 alpha-2 or alpha-3.",
    ),
];

const LINE_TYPES: &[&str] = &[
    "Classic",
    "Instalment",
    "Micropayment",
    "Subscription",
    "Voucher",
    "Voucher purchase",
    "Compensation Voucher",
    "Dealer Voucher Purchase",
    "Dealer Voucher Redemption",
];

pub static ORDER_LINE: &[Field] = &[
    f("lineNumber", Kind::Int { min: 1, max: 100_000 }, false, "Position of the line, from 1."),
    f("lineType", st(50, Text::OneOf(LINE_TYPES)), false, "Line type."),
    f("klarnaLineType", st(50, Text::OneOf(&["Physical", "Digital"])), true, "Physical or Digital."),
    f("itemArticleId", s(20), true, "Article id."),
    f("itemName", s(135), true, "Item name in the local language."),
    f("itemNumber", s(50), false, "Merchant-internal item number."),
    f("quantity", Kind::Int { min: 1, max: 1_000_000 }, false, "Quantity."),
    f("unitPrice", Kind::Amount { positive: false }, false, "Unit price in the payment currency."),
    f("unitVatPrice", Kind::Amount { positive: false }, false, "VAT per unit."),
    f("unitGrossPrice", Kind::Amount { positive: false }, false, "Gross unit price."),
    f("vatPercent", Kind::Decimal { scale: 2, min: 0, max: 100 }, false, "VAT rate in percent."),
    f("netAmount", Kind::Amount { positive: false }, false, "Net amount of the line."),
    f("vatAmount", Kind::Amount { positive: false }, false, "VAT amount of the line."),
    f("grossAmount", Kind::Amount { positive: false }, false, "Gross amount of the line."),
];

/// Most order lines one checkout may carry.
pub const MAX_ORDER_LINES: usize = 100;
static ORDER_LINE_KIND: Kind = Kind::Object(ORDER_LINE);

pub static ORDER: &[Field] = &[
    f("externalOrderReference", s(225), true, "Merchant's order reference; echoed in the response."),
    f("lines", Kind::Array { item: &ORDER_LINE_KIND, max_items: MAX_ORDER_LINES }, true, "Order lines."),
];

pub static CUSTOM_REFERENCES: &[Field] = &[
    f("custom1", s(255), false, "Free reference for external use."),
    f("custom2", s(255), false, "Free reference for external use."),
    f("custom3", s(255), false, "Free reference for external use."),
];

pub static EXTRA_INFO: &[Field] = &[f("productGroup", s(100), false, "Product group selection.")];

pub static TEMPLATE_CONTEXT: &[Field] = &[
    f("templateId", st(36, Text::Uuid), false, "Template id (UUID)."),
    f("templateName", s(100), false, "Template name, e.g. Blue Label."),
    f("merchantLogoURL", st(2048, Text::Url), false, "Absolute URL of the merchant's logo."),
];

pub static CRITERION: &[Field] =
    &[f("key", s(64), true, "Criterion name."), f("value", s(255), true, "Criterion value.")];
static CRITERION_KIND: Kind = Kind::Object(CRITERION);

/// The whole Create Checkout body.
pub static CHECKOUT: &[Field] = &[
    f("merchantKey", st(36, Text::Uuid), true, "The merchant's key (UUID); must be the authenticated merchant's."),
    f(
        "partnerReference",
        st(64, Text::Charset("-_.:")),
        false,
        "Merchant's transaction id, unique per merchant; a repeat with the same body returns the first response.",
    ),
    f("customerAccountId", s(255), false, "Vault account id; absent for a guest payment."),
    Field {
        name: "3dsExemption",
        kind: Kind::Exemption,
        required: false,
        aliases: &["3DSExemption"],
        description: "3-D Secure exemption: `LVA`, or `{\"type\": \"LVA\"}`.",
    },
    f(
        "shopCountry",
        Kind::Str { min: 2, max: 2, text: Text::Country2 },
        false,
        "ISO 3166-1 alpha-2 country of the shop.",
    ),
    f("payment", Kind::Object(PAYMENT), true, "Amount, currency and description."),
    f("templateContext", Kind::Object(TEMPLATE_CONTEXT), false, "Hosted payment page template."),
    f("billingAddress", Kind::Object(ADDRESS), true, "Consumer's billing address."),
    f("shippingAddress", Kind::Object(ADDRESS), false, "Shipping address (physical goods)."),
    f("consumer", Kind::Object(CONSUMER), false, "The paying person; required unless businessConsumer is given."),
    f(
        "businessConsumer",
        Kind::Object(BUSINESS_CONSUMER),
        false,
        "The paying company; required unless consumer is given.",
    ),
    f("order", Kind::Object(ORDER), false, "Order details and lines."),
    f("extraInfo", Kind::Object(EXTRA_INFO), false, "Product group."),
    f(
        "customReferences",
        Kind::Object(CUSTOM_REFERENCES),
        false,
        "Up to three free references, returned by Get Payment Status.",
    ),
    f("criteria", Kind::Array { item: &CRITERION_KIND, max_items: 50 }, false, "Custom key/value pairs."),
];

/// A Create Checkout request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCheckout {
    pub merchant_key: String,
    pub partner_reference: Option<String>,
    pub customer_account_id: Option<String>,
    pub amount: Money,
    pub description: String,
    pub external_order_reference: Option<String>,
    /// `customReferences` as canonical JSON, if given.
    pub custom_references_json: Option<String>,
    /// `consumer.culture` or `businessConsumer.culture`.
    pub culture: Option<String>,
    /// The recognized request in canonical form (see [`schema::canonical`]): stored with the
    /// checkout and hashed into idempotency fingerprints.
    pub canonical: String,
    /// Unknown properties, for `ignoredProperties`.
    pub ignored: Vec<String>,
}

/// The merchantKey of a body, when it has one as a string: authorization compares it before
/// validation so that no other merchant's caller learns anything from validation messages.
pub fn merchant_key_of(body: &Value) -> Option<&str> {
    body.get("merchantKey")?.as_str()
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |cur, p| cur.get(p))?.as_str()
}

/// Validates a parsed Create Checkout body, reporting every violation at once.
pub fn validate(body: &Value) -> Result<ValidCheckout, (Vec<Violation>, Vec<String>)> {
    let mut out = Outcome::default();
    let currency = text(body, &["payment", "currencyCode"]).and_then(Currency::from_code);
    schema::check_object(CHECKOUT, body, "", &mut Pass { currency, out: &mut out });

    if matches!(body, Value::Object(_)) {
        let present = |k: &str| !matches!(body.get(k), None | Some(Value::Null));
        if !present("consumer") && !present("businessConsumer") {
            out.violations.push(
                Violation::new(Code::MissingProperty, "consumer")
                    .with("alternative", Fact::Text("businessConsumer".into())),
            );
        }
        for addr in ["billingAddress", "shippingAddress"] {
            let country = text(body, &[addr, "countryCode"]);
            let has_state = matches!(body.get(addr).and_then(|a| a.get("state")), Some(Value::String(_)));
            if matches!(country, Some("US" | "USA" | "CA" | "CAN")) && !has_state {
                out.violations.push(
                    Violation::new(Code::MissingProperty, format!("{addr}.state"))
                        .with("when", Fact::Text("countryCode is US, USA, CA or CAN".into())),
                );
            }
        }
    }
    if !out.violations.is_empty() {
        return Err((out.violations, out.ignored));
    }
    let (Some(currency), Some(Value::Number(amount_text))) =
        (currency, body.get("payment").and_then(|p| p.get("amount")))
    else {
        return Err((vec![Violation::new(Code::MissingProperty, "payment.amount")], out.ignored));
    };
    let minor = money::parse_minor(amount_text, currency.exponent())
        .map_err(|_| (vec![Violation::new(Code::ValueOutOfBounds, "payment.amount")], out.ignored.clone()))?;

    let mut canonical = String::new();
    schema::canonical(CHECKOUT, body, Some(currency), &mut canonical);
    let custom_references_json = body.get("customReferences").filter(|v| **v != Value::Null).map(|v| {
        let mut s = String::new();
        schema::canonical(CUSTOM_REFERENCES, v, None, &mut s);
        s
    });
    let owned = |path: &[&str]| text(body, path).map(str::to_owned);
    Ok(ValidCheckout {
        merchant_key: owned(&["merchantKey"]).unwrap_or_default().to_ascii_lowercase(),
        partner_reference: owned(&["partnerReference"]),
        customer_account_id: owned(&["customerAccountId"]),
        amount: Money { minor, currency },
        description: owned(&["payment", "description"]).unwrap_or_default(),
        external_order_reference: owned(&["order", "externalOrderReference"]),
        custom_references_json,
        culture: owned(&["consumer", "culture"]).or_else(|| owned(&["businessConsumer", "culture"])),
        canonical,
        ignored: out.ignored,
    })
}

#[cfg(test)]
mod tests;
