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
/// Any text, however long its digits or exponent, gives a value or an error, never a panic.
pub fn parse_minor(text: &str, exponent: u8) -> Result<i64, AmountError> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], parse_exponent(&rest[i + 1..])?),
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
    // value = significant × 10^(exp − frac_len + trailing zeros); minor = value × 10^exponent.
    let digits = format!("{int_part}{frac_part}");
    let without_trailing = digits.trim_end_matches('0');
    let significant = without_trailing.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    // i128 holds these sums of an i64 and lengths; checked all the same, so nothing can wrap.
    let wide = |n: usize| i128::try_from(n).ok();
    let shift = wide(digits.len() - without_trailing.len())
        .and_then(|zeros| i128::from(exp).checked_add(zeros))
        .and_then(|p| p.checked_sub(wide(frac_part.len())?))
        .and_then(|p| p.checked_add(i128::from(exponent)))
        .ok_or(AmountError::TooLarge)?;
    if shift < 0 {
        return Err(AmountError::TooPrecise { max: exponent });
    }
    // MAX_MINOR has 18 digits: anything longer is refused before a digit is converted.
    if wide(significant.len()).and_then(|len| len.checked_add(shift)).is_none_or(|total| total > 18) {
        return Err(AmountError::TooLarge);
    }
    let minor = u32::try_from(shift)
        .ok()
        .and_then(|shift| 10i64.checked_pow(shift))
        .zip(significant.parse::<i64>().ok())
        .and_then(|(scale, significant)| significant.checked_mul(scale))
        .filter(|minor| *minor <= MAX_MINOR)
        .ok_or(AmountError::TooLarge)?;
    Ok(if negative { -minor } else { minor })
}

/// Reads a number's exponent: an optional sign, then at least one digit. An exponent beyond
/// i64 saturates: no mantissa is long enough to bring such a value back into range.
fn parse_exponent(text: &str) -> Result<i64, AmountError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    let magnitude = digits.trim_start_matches('0');
    // Only digits remain, so parsing fails only by overflowing.
    let value: i64 = if magnitude.is_empty() { 0 } else { magnitude.parse().unwrap_or(i64::MAX) };
    Ok(if negative { -value } else { value })
}

/// Formats minor units as a major-unit decimal text: `1099, 2` → `10.99`, `100, 0` → `100`.
pub fn format_minor(minor: i64, exponent: u8) -> String {
    let mut out = String::with_capacity(24);
    if minor < 0 {
        out.push('-');
    }
    let abs = minor.unsigned_abs();
    match 10u64.checked_pow(u32::from(exponent)) {
        Some(scale) if exponent > 0 => {
            push_digits(&mut out, abs / scale, 1);
            out.push('.');
            push_digits(&mut out, abs % scale, usize::from(exponent));
        }
        Some(_) => push_digits(&mut out, abs, 1),
        // 10^20 and above exceed any i64: all of it is fraction.
        None => {
            out.push_str("0.");
            push_digits(&mut out, abs, usize::from(exponent));
        }
    }
    out
}

/// Appends `value` in decimal, with leading zeros up to `width` digits. Status responses write
/// amounts and dates often enough that the formatting machinery showed in profiles.
pub fn push_digits(out: &mut String, mut value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    let len = digits.len() - start;
    for _ in len..width {
        out.push('0');
    }
    out.extend(digits[start..].iter().map(|b| char::from(*b)));
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
    fn extreme_exponents_and_digit_strings_are_refused_without_overflowing() {
        let too_large = [
            "1e9223372036854775807".to_owned(),
            "1e9223372036854775808".to_owned(),
            "1e+9223372036854775807".to_owned(),
            "-1E9223372036854775807".to_owned(),
            "1.5e9223372036854775807".to_owned(),
            "1e00000000000000000000000000000000019".to_owned(),
            "1".repeat(100_000),
            format!("{}.5", "9".repeat(100_000)),
            format!("1{}", "0".repeat(100_000)),
            format!("1{}e-99980", "0".repeat(100_000)),
        ];
        for text in &too_large {
            assert_eq!(parse_minor(text, 2), Err(AmountError::TooLarge), "{text:.40}");
        }
        let too_precise = [
            "1e-9223372036854775808".to_owned(),
            "1e-9223372036854775807".to_owned(),
            "1e-99999999999999999999999999".to_owned(),
            "-9.9e-9223372036854775808".to_owned(),
            format!("0.{}1", "0".repeat(100_000)),
            format!("1{}e-9223372036854775808", "0".repeat(10_000)),
        ];
        for text in &too_precise {
            assert_eq!(parse_minor(text, 2), Err(AmountError::TooPrecise { max: 2 }), "{text:.40}");
        }
        for zero in ["0e9223372036854775807", "0e-9223372036854775808", "0.000e99999999999999999999", "-0"] {
            assert_eq!(parse_minor(zero, 2), Ok(0), "{zero}");
        }
        assert_eq!(parse_minor(&format!("0.{}1e100003", "0".repeat(100_000)), 2), Ok(10_000));
        assert_eq!(parse_minor(&format!("{}1.5", "0".repeat(100_000)), 2), Ok(150));
        for bad in ["1e--5", "1e+-5", "1e-+5", "1e+", "1e-", "1e5.5", "1e5e5", "1ee5", "1e 5"] {
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
        assert_eq!(format_minor(0, 2), "0.00");
        assert_eq!(format_minor(i64::MIN, 0), "-9223372036854775808");
        assert_eq!(format_minor(i64::MAX, 4), "922337203685477.5807");
        assert_eq!(format_minor(-5, 21), format!("-0.{}5", "0".repeat(20)));
        let mut s = String::new();
        push_digits(&mut s, u64::MAX, 1);
        push_digits(&mut s, 7, 3);
        assert_eq!(s, "18446744073709551615007");
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

        #[test]
        fn any_exponent_gives_a_value_or_an_error(
            mantissa in "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?",
            sign in "[-+]?",
            exp in "[0-9]{1,40}",
            exponent in 0u8..=4,
        ) {
            let text = format!("{mantissa}e{sign}{exp}");
            match parse_minor(&text, exponent) {
                Ok(minor) => prop_assert!(minor.unsigned_abs() <= MAX_MINOR as u64, "{text}: {minor}"),
                Err(e) => prop_assert_ne!(e, AmountError::NotANumber, "{}", text),
            }
        }

        #[test]
        fn a_power_of_ten_moves_the_point(minor in 1i64..1_000_000_000, shift in 0u32..=8) {
            // `minor` in EUR cents written as `minor × 10^-(2 + shift)` with the point moved back.
            let text = format!("{minor}{}e-{}", "0".repeat(shift as usize), shift + 2);
            prop_assert_eq!(parse_minor(&text, 2), Ok(minor));
        }
    }
}
