//! Exact money: amounts are integer minor units of an ISO 4217 currency.
//!
//! The API carries amounts as JSON numbers in major units (`10.99`). They are read from the
//! number's source text, never through binary floating point, and refused when they carry more
//! precision than the currency has (EUR 2 decimals, JPY 0, KWD 3).

use std::fmt;

/// The largest amount the API accepts, in minor units: the reference's `decimal 18.2`.
pub const MAX_MINOR: i64 = 999_999_999_999_999_999;

/// An active ISO 4217 currency with a defined number of minor digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// Looks up an upper-case three-letter code. Unknown codes, superseded codes and codes
    /// without minor units (precious metals, testing codes) are refused.
    pub fn from_code(code: &str) -> Option<Currency> {
        let c = iso_currency::Currency::from_code(code)?;
        if c.is_superseded().is_some() || c.is_fund() || c.is_special() {
            return None;
        }
        let exponent = u8::try_from(c.exponent()?).ok()?;
        let b = code.as_bytes();
        Some(Currency { code: [b[0], b[1], b[2]], exponent })
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Digits after the decimal point (EUR 2, JPY 0, KWD 3).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    /// The amount in major units as a JSON number text with the currency's decimals.
    pub fn major_text(&self) -> String {
        format_minor(self.minor, self.currency.exponent())
    }
}

/// Why an amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("not a number")]
    NotANumber,
    #[error("more decimals than the currency allows ({max})")]
    TooPrecise { max: u8 },
    #[error("amount too large")]
    TooLarge,
}

/// Parses a JSON number's text into minor units with `exponent` decimals.
/// Trailing zeros after the point do not count as precision (`10.990` EUR is 1099).
pub fn parse_minor(text: &str, exponent: u8) -> Result<i64, AmountError> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => {
            let e = &rest[i + 1..];
            let e = e.strip_prefix('+').unwrap_or(e);
            if e.is_empty() || !e.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) {
                return Err(AmountError::NotANumber);
            }
            // Exponents beyond a few digits can only overflow or underflow.
            let e: i64 = e.parse().unwrap_or(if e.starts_with('-') { i64::MIN / 2 } else { i64::MAX / 2 });
            (&rest[..i], e)
        }
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    if int_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || (mantissa.contains('.') && frac_part.is_empty())
    {
        return Err(AmountError::NotANumber);
    }
    // value = digits × 10^(exp − frac_len); drop leading and trailing zeros of `digits`.
    let mut digits: String = format!("{int_part}{frac_part}");
    let mut power = exp.saturating_sub(frac_part.len() as i64);
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
        power = power.saturating_add(1);
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    // minor = digits × 10^(power + exponent)
    let shift = power.saturating_add(i64::from(exponent));
    if shift < 0 {
        return Err(AmountError::TooPrecise { max: exponent });
    }
    if digits.len() as i64 + shift > 18 {
        return Err(AmountError::TooLarge);
    }
    let mut minor: i64 = digits.parse().map_err(|_| AmountError::TooLarge)?;
    for _ in 0..shift {
        minor = minor.checked_mul(10).ok_or(AmountError::TooLarge)?;
    }
    if minor > MAX_MINOR {
        return Err(AmountError::TooLarge);
    }
    Ok(if negative { -minor } else { minor })
}

/// Formats minor units as a major-unit decimal text: `1099, 2` → `10.99`, `100, 0` → `100`.
pub fn format_minor(minor: i64, exponent: u8) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{abs}");
    }
    let scale = 10u64.pow(u32::from(exponent));
    format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = usize::from(exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::from_code("EUR").unwrap()
    }

    #[test]
    fn currencies_know_their_minor_digits() {
        assert_eq!(eur().exponent(), 2);
        assert_eq!(Currency::from_code("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::from_code("KWD").unwrap().exponent(), 3);
        for refused in ["XAU", "XXX", "XTS", "EURO", "eur", "ABC", ""] {
            assert!(Currency::from_code(refused).is_none(), "{refused}");
        }
    }

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_minor("10.99", 2), Ok(1099));
        assert_eq!(parse_minor("800.2", 2), Ok(80020));
        assert_eq!(parse_minor("1e2", 0), Ok(100));
        assert_eq!(parse_minor("1E+2", 2), Ok(10000));
        assert_eq!(parse_minor("1.234", 3), Ok(1234));
        assert_eq!(parse_minor("10.990", 2), Ok(1099));
        assert_eq!(parse_minor("0", 2), Ok(0));
        assert_eq!(parse_minor("-5.5", 2), Ok(-550));
        assert_eq!(parse_minor("2000.01", 2), Ok(200001));
        assert_eq!(parse_minor("12345e-2", 2), Ok(12345));
        assert_eq!(parse_minor("0.30000000000000004441", 2), Err(AmountError::TooPrecise { max: 2 }));
        assert_eq!(parse_minor("10.999", 2), Err(AmountError::TooPrecise { max: 2 }));
        assert_eq!(parse_minor("12.5", 0), Err(AmountError::TooPrecise { max: 0 }));
        assert_eq!(parse_minor("1e-999999999999999999999", 2), Err(AmountError::TooPrecise { max: 2 }));
        assert_eq!(parse_minor("1e999999999999999999999", 2), Err(AmountError::TooLarge));
        assert_eq!(parse_minor("10000000000000000", 2), Err(AmountError::TooLarge));
        assert_eq!(parse_minor("9999999999999999.99", 2), Ok(MAX_MINOR));
        for bad in ["", "-", "1.", ".5", "1e", "abc", "1.2.3", "NaN", "Infinity"] {
            assert_eq!(parse_minor(bad, 2), Err(AmountError::NotANumber), "{bad}");
        }
    }

    #[test]
    fn amounts_format_with_the_currencys_digits() {
        assert_eq!(format_minor(1099, 2), "10.99");
        assert_eq!(format_minor(5, 2), "0.05");
        assert_eq!(format_minor(100, 0), "100");
        assert_eq!(format_minor(1234, 3), "1.234");
        assert_eq!(format_minor(-550, 2), "-5.50");
    }

    proptest! {
        #[test]
        fn every_amount_round_trips(minor in 0..=MAX_MINOR, exponent in 0u8..=3) {
            prop_assume!(exponent == 2 || minor < MAX_MINOR / 1000);
            let text = format_minor(minor, exponent);
            prop_assert_eq!(parse_minor(&text, exponent), Ok(minor));
        }

        #[test]
        fn one_more_digit_than_allowed_is_refused(minor in 0i64..1_000_000_000, last in 1u8..=9, exponent in 0u8..=3) {
            let text = if exponent == 0 { format!("{minor}.{last}") } else { format!("{}{last}", format_minor(minor, exponent)) };
            prop_assert_eq!(parse_minor(&text, exponent), Err(AmountError::TooPrecise { max: exponent }));
        }

        #[test]
        fn never_panics(s in "[-+0-9.eE]{0,30}", exponent in 0u8..=4) {
            let _ = parse_minor(&s, exponent);
        }
    }
}
