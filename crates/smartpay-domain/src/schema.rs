//! Table-driven request validation.
//!
//! A request body is described once, as a tree of [`Field`]s. The same table validates
//! bodies (every violation is collected, not only the first), lists unknown properties for
//! `ignoredProperties`, produces the canonical form used for idempotency fingerprints, and
//! is walked by the server to publish the OpenAPI schema, so documentation and behaviour
//! cannot drift apart.

use crate::json::Value;
use crate::money::{self, AmountError, Currency};
use crate::violation::{Code, Fact, Violation};

/// A property of an object.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    /// Older spellings accepted as the same property.
    pub aliases: &'static [&'static str],
    pub description: &'static str,
}

/// Rules for a string's content, beyond its length.
#[derive(Debug, Clone, Copy)]
pub enum Text {
    Any,
    /// A UUID in its 8-4-4-4-12 hex form.
    Uuid,
    /// Only the listed ASCII characters plus letters and digits.
    Charset(&'static str),
    /// One of the listed values, compared without regard to case.
    OneOf(&'static [&'static str]),
    Email,
    /// ISO 3166-1 alpha-2.
    Country2,
    /// ISO 3166-1 alpha-2 or alpha-3.
    Country23,
    /// ISO 4217, upper case.
    Currency,
    /// `YYYY-MM-DD`, from 1900-01-01 on.
    Date,
    /// `ll-CC` (ISO 639-1 language, ISO 3166-1 country), any case.
    Culture,
    /// An absolute `http(s)` URL.
    Url,
}

#[derive(Debug)]
pub enum Kind {
    Str {
        min: usize,
        max: usize,
        text: Text,
    },
    /// An amount in the payment's currency (major units, exact).
    Amount {
        positive: bool,
    },
    /// A decimal number in `[min, max]` with at most `scale` decimals (e.g. a VAT percentage).
    Decimal {
        scale: u8,
        min: i64,
        max: i64,
    },
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    Object(&'static [Field]),
    Array {
        item: &'static Kind,
        max_items: usize,
    },
    /// `"LVA"` or `{"type": "LVA"}`: the 3-D Secure exemption in its old and new forms.
    Exemption,
}

/// What a validation pass found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    /// Dotted paths of properties the table does not know.
    pub ignored: Vec<String>,
}

/// Context shared by one validation pass.
pub struct Pass<'a> {
    pub currency: Option<Currency>,
    pub out: &'a mut Outcome,
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

/// Validates an object against `fields`, recording violations and unknown members.
pub fn check_object(fields: &[Field], v: &Value, path: &str, pass: &mut Pass<'_>) {
    let Value::Object(members) = v else {
        pass.out.violations.push(type_error(path, "object", v));
        return;
    };
    for f in fields {
        let found = std::iter::once(f.name).chain(f.aliases.iter().copied()).find_map(|n| v.get(n).map(|val| (n, val)));
        let p = join(path, f.name);
        match found {
            None | Some((_, Value::Null)) => {
                if f.required {
                    pass.out.violations.push(Violation::new(Code::MissingProperty, p));
                }
            }
            Some((_, val)) => check_value(&f.kind, val, &p, pass),
        }
    }
    for (k, _) in members {
        if !fields.iter().any(|f| f.name == k || f.aliases.contains(&k.as_str())) {
            pass.out.ignored.push(join(path, k));
        }
    }
}

fn type_error(path: &str, expected: &'static str, v: &Value) -> Violation {
    Violation::new(Code::InvalidType, path)
        .with("expected", Fact::Text(expected.into()))
        .with("actual", Fact::Text(v.type_name().into()))
}

/// Characters never accepted in text: C0/C1 controls and bidirectional overrides.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn check_value(kind: &Kind, v: &Value, path: &str, pass: &mut Pass<'_>) {
    match kind {
        Kind::Str { min, max, text } => {
            let Value::String(s) = v else {
                pass.out.violations.push(type_error(path, "string", v));
                return;
            };
            check_text(s, *min, *max, *text, path, pass);
        }
        Kind::Amount { positive } => {
            let Value::Number(n) = v else {
                pass.out.violations.push(type_error(path, "number", v));
                return;
            };
            // Without a valid currency the precision cannot be judged; the currency's own
            // violation says why.
            if let Some(c) = pass.currency {
                match money::parse_minor(n, c.exponent()) {
                    Ok(m) if m < 0 || (*positive && m == 0) => pass.out.violations.push(
                        Violation::new(Code::ValueOutOfBounds, path)
                            .with(
                                "minimum",
                                Fact::Text(money::format_minor(if *positive { 1 } else { 0 }, c.exponent())),
                            )
                            .with("maximum", Fact::Text(money::format_minor(money::MAX_MINOR, c.exponent()))),
                    ),
                    Ok(_) => {}
                    Err(AmountError::TooPrecise { max }) => pass.out.violations.push(
                        Violation::new(Code::InvalidAmountPrecision, path)
                            .with("currencyCode", Fact::Text(c.code().into()))
                            .with("maxDecimals", Fact::Int(i64::from(max))),
                    ),
                    Err(AmountError::TooLarge | AmountError::NotANumber) => pass.out.violations.push(
                        Violation::new(Code::ValueOutOfBounds, path)
                            .with(
                                "minimum",
                                Fact::Text(money::format_minor(if *positive { 1 } else { 0 }, c.exponent())),
                            )
                            .with("maximum", Fact::Text(money::format_minor(money::MAX_MINOR, c.exponent()))),
                    ),
                }
            }
        }
        Kind::Decimal { scale, min, max } => {
            let Value::Number(n) = v else {
                pass.out.violations.push(type_error(path, "number", v));
                return;
            };
            match money::parse_minor(n, *scale) {
                Ok(m)
                    if (min.saturating_mul(10i64.pow(u32::from(*scale)))
                        ..=max.saturating_mul(10i64.pow(u32::from(*scale))))
                        .contains(&m) => {}
                Err(AmountError::TooPrecise { max: d }) => pass.out.violations.push(
                    Violation::new(Code::InvalidAmountPrecision, path).with("maxDecimals", Fact::Int(i64::from(d))),
                ),
                _ => pass.out.violations.push(
                    Violation::new(Code::ValueOutOfBounds, path)
                        .with("minimum", Fact::Int(*min))
                        .with("maximum", Fact::Int(*max)),
                ),
            }
        }
        Kind::Int { min, max } => {
            let Value::Number(n) = v else {
                pass.out.violations.push(type_error(path, "integer", v));
                return;
            };
            match money::parse_minor(n, 0) {
                Ok(i) if (*min..=*max).contains(&i) => {}
                Err(AmountError::TooPrecise { .. }) => pass.out.violations.push(type_error(path, "integer", v)),
                _ => pass.out.violations.push(
                    Violation::new(Code::ValueOutOfBounds, path)
                        .with("minimum", Fact::Int(*min))
                        .with("maximum", Fact::Int(*max)),
                ),
            }
        }
        Kind::Bool => {
            if !matches!(v, Value::Bool(_)) {
                pass.out.violations.push(type_error(path, "boolean", v));
            }
        }
        Kind::Object(fields) => check_object(fields, v, path, pass),
        Kind::Array { item, max_items } => {
            let Value::Array(items) = v else {
                pass.out.violations.push(type_error(path, "array", v));
                return;
            };
            if items.len() > *max_items {
                pass.out
                    .violations
                    .push(Violation::new(Code::TooManyItems, path).with("maxItems", Fact::Int(*max_items as i64)));
                return;
            }
            for (i, it) in items.iter().enumerate() {
                check_value(item, it, &format!("{path}[{i}]"), pass);
            }
        }
        Kind::Exemption => match v {
            Value::String(_) => check_value(&EXEMPTION_VALUE, v, path, pass),
            Value::Object(_) => check_object(EXEMPTION_OBJECT, v, path, pass),
            _ => pass.out.violations.push(type_error(path, "string or object", v)),
        },
    }
}

const EXEMPTIONS: &[&str] = &["LVA"];
static EXEMPTION_VALUE: Kind = Kind::Str { min: 1, max: 3, text: Text::OneOf(EXEMPTIONS) };
/// The object form of the 3-D Secure exemption. The reference does not publish the inner
/// property's name; `type` is this implementation's choice (docs/decisions/0003).
pub static EXEMPTION_OBJECT: &[Field] = &[Field {
    name: "type",
    kind: Kind::Str { min: 1, max: 3, text: Text::OneOf(EXEMPTIONS) },
    required: true,
    aliases: &[],
    description: "Requested exemption: `LVA` (low value).",
}];

fn check_text(s: &str, min: usize, max: usize, text: Text, path: &str, pass: &mut Pass<'_>) {
    let v = &mut pass.out.violations;
    if s.chars().any(is_forbidden_char) {
        v.push(Violation::new(Code::InvalidCharacters, path));
        return;
    }
    let len = s.chars().count();
    if len > max {
        v.push(Violation::new(Code::ValueTooLong, path).with("maxLength", Fact::Int(max as i64)));
        return;
    }
    if len < min {
        v.push(Violation::new(Code::ValueTooShort, path).with("minLength", Fact::Int(min as i64)));
        return;
    }
    let format = |name: &str| Violation::new(Code::InvalidFormat, path).with("format", Fact::Text(name.into()));
    match text {
        Text::Any => {}
        Text::Uuid => {
            if !is_uuid(s) {
                v.push(format("uuid"));
            }
        }
        Text::Charset(extra) => {
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c)) {
                v.push(
                    Violation::new(Code::InvalidCharacters, path)
                        .with("allowed", Fact::Text(format!("a-z A-Z 0-9 {}", spaced(extra)))),
                );
            }
        }
        Text::OneOf(values) => {
            if !values.iter().any(|a| a.eq_ignore_ascii_case(s)) {
                v.push(
                    Violation::new(Code::InvalidValue, path)
                        .with("allowedValues", Fact::List(values.iter().map(|s| (*s).to_owned()).collect())),
                );
            }
        }
        Text::Email => {
            if !is_email(s) {
                v.push(format("email"));
            }
        }
        Text::Country2 => {
            if !is_country(s, false) {
                v.push(
                    Violation::new(Code::UnsupportedCountry, path)
                        .with("standard", Fact::Text("ISO 3166-1 alpha-2".into())),
                );
            }
        }
        Text::Country23 => {
            if !is_country(s, true) {
                v.push(
                    Violation::new(Code::UnsupportedCountry, path)
                        .with("standard", Fact::Text("ISO 3166-1 alpha-2 or alpha-3".into())),
                );
            }
        }
        Text::Currency => {
            if !(s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())) {
                v.push(format("^[A-Z]{3}$"));
            } else if Currency::from_code(s).is_none() {
                v.push(Violation::new(Code::UnsupportedCurrency, path).with("standard", Fact::Text("ISO 4217".into())));
            }
        }
        Text::Date => match crate::time::parse_date(s) {
            Some((y, m, d)) if y >= 1900 && (y, m, d) <= crate::time::Millis::now().date() => {}
            Some(_) => v.push(
                Violation::new(Code::ValueOutOfBounds, path)
                    .with("minimum", Fact::Text("1900-01-01".into()))
                    .with("maximum", Fact::Text("today".into())),
            ),
            None => v.push(format("YYYY-MM-DD")),
        },
        Text::Culture => {
            if !is_culture(s) {
                v.push(format("ll-CC"));
            }
        }
        Text::Url => {
            if !is_url(s) {
                v.push(format("absolute http(s) URL"));
            }
        }
    }
}

fn spaced(extra: &str) -> String {
    extra.chars().map(|c| c.to_string()).collect::<Vec<_>>().join(" ")
}

/// `8-4-4-4-12` hexadecimal digits.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains(char::is_whitespace)
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

/// ISO 3166-1: an assigned alpha-2 code, or with `alpha3` also an assigned alpha-3 code.
pub fn is_country(s: &str, alpha3: bool) -> bool {
    if !s.bytes().all(|b| b.is_ascii_uppercase()) {
        return false;
    }
    match s.len() {
        2 => celes::Country::from_alpha2(s).is_ok(),
        3 if alpha3 => celes::Country::from_alpha3(s).is_ok(),
        _ => false,
    }
}

fn is_culture(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b'-'
        && b[..2].iter().all(u8::is_ascii_alphabetic)
        && b[3..].iter().all(u8::is_ascii_alphabetic)
}

fn is_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r) => {
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Writes the recognized part of `v` in canonical form: members sorted by name, unknown
/// members dropped, aliases renamed, amounts as integer minor units. Two bodies that mean the
/// same request give the same bytes.
pub fn canonical(fields: &[Field], v: &Value, currency: Option<Currency>, out: &mut String) {
    let mut present: Vec<(&Field, &Value)> = fields
        .iter()
        .filter_map(|f| {
            std::iter::once(f.name)
                .chain(f.aliases.iter().copied())
                .find_map(|n| v.get(n))
                .filter(|x| **x != Value::Null)
                .map(|x| (f, x))
        })
        .collect();
    present.sort_by_key(|(f, _)| f.name);
    out.push('{');
    for (i, (f, x)) in present.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(f.name, out);
        out.push(':');
        canonical_value(&f.kind, x, currency, out);
    }
    out.push('}');
}

fn canonical_value(kind: &Kind, v: &Value, currency: Option<Currency>, out: &mut String) {
    match (kind, v) {
        (Kind::Object(fields), _) => canonical(fields, v, currency, out),
        (Kind::Exemption, Value::Object(_)) => canonical(EXEMPTION_OBJECT, v, currency, out),
        (Kind::Array { item, .. }, Value::Array(items)) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_value(item, it, currency, out);
            }
            out.push(']');
        }
        (Kind::Amount { .. }, Value::Number(n)) => {
            let minor = currency.and_then(|c| money::parse_minor(n, c.exponent()).ok());
            match minor {
                Some(m) => out.push_str(&m.to_string()),
                None => out.push_str(n),
            }
        }
        (_, other) => write_value(other, out),
    }
}

/// Serializes a value as compact JSON.
pub fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(it, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (k, it)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(it, out);
            }
            out.push('}');
        }
    }
}

/// Writes a JSON string literal.
pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
