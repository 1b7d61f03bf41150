//! Rule violations found while validating input: a stable code, the property path, and the
//! facts a message needs (limits, allowed values). Messages themselves are the server's job,
//! so they can be rendered in the caller's language.

/// Stable, snake_case error codes; one meaning each. Listed in `docs/api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    MissingProperty,
    InvalidType,
    ValueTooLong,
    ValueTooShort,
    InvalidFormat,
    InvalidValue,
    InvalidCharacters,
    ValueOutOfBounds,
    InvalidAmountPrecision,
    UnsupportedCurrency,
    UnsupportedCountry,
    TooManyItems,
    ConflictingProperties,
    MalformedJson,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MissingProperty => "missing_property",
            Code::InvalidType => "invalid_type",
            Code::ValueTooLong => "value_too_long",
            Code::ValueTooShort => "value_too_short",
            Code::InvalidFormat => "invalid_format",
            Code::InvalidValue => "invalid_value",
            Code::InvalidCharacters => "invalid_characters",
            Code::ValueOutOfBounds => "value_out_of_bounds",
            Code::InvalidAmountPrecision => "invalid_amount_precision",
            Code::UnsupportedCurrency => "unsupported_currency",
            Code::UnsupportedCountry => "unsupported_country",
            Code::TooManyItems => "too_many_items",
            Code::ConflictingProperties => "conflicting_properties",
            Code::MalformedJson => "malformed_json",
        }
    }
}

/// A fact attached to a violation, rendered into `context` and into the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    Int(i64),
    Text(String),
    List(Vec<String>),
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: Code,
    /// Dotted path of the property, e.g. `payment.amount` or `order.lines[0].itemName`.
    pub property: String,
    pub context: Vec<(&'static str, Fact)>,
}

impl Violation {
    pub fn new(code: Code, property: impl Into<String>) -> Self {
        Violation { code, property: property.into(), context: Vec::new() }
    }

    pub fn with(mut self, key: &'static str, fact: Fact) -> Self {
        self.context.push((key, fact));
        self
    }

    /// The context value under `key`, if any.
    pub fn fact(&self, key: &str) -> Option<&Fact> {
        self.context.iter().find(|(k, _)| *k == key).map(|(_, f)| f)
    }
}
