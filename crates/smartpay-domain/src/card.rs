//! Card data rules: brand detection from the number (one BIN table, also served to the widget),
//! Luhn, expiry and CVC checks, and masking. Card numbers and CVCs live in types whose `Debug`
//! and `Display` never show them, and whose memory is wiped on drop.

use std::fmt;

/// A card brand, as SmartPay's payment option codes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Maestro,
}

impl Brand {
    /// The `paymentMethod` code (reference §4.3).
    pub fn code(self) -> &'static str {
        match self {
            Brand::Visa => "VISA",
            Brand::Mastercard => "MSTRCRD",
            Brand::Amex => "AMEX",
            Brand::Discover => "DISCOVER",
            Brand::Jcb => "JCB",
            Brand::Maestro => "MSTRO",
        }
    }

    /// Digits of the CVC.
    pub fn cvc_len(self) -> usize {
        if self == Brand::Amex { 4 } else { 3 }
    }
}

/// One row of the BIN table: numbers starting with a prefix in `[from, to]` (compared on the
/// first `digits` digits) belong to `brand` and have one of `lengths`.
#[derive(Debug, Clone, Copy)]
pub struct BinRange {
    pub from: u32,
    pub to: u32,
    pub digits: u8,
    pub brand: Brand,
    pub lengths: &'static [u8],
}

/// The BIN table, most specific ranges first. The widget receives it as JSON
/// (`/sdk/bins.json`), so browser and server detect brands identically.
pub const BIN_TABLE: &[BinRange] = &[
    BinRange { from: 34, to: 34, digits: 2, brand: Brand::Amex, lengths: &[15] },
    BinRange { from: 37, to: 37, digits: 2, brand: Brand::Amex, lengths: &[15] },
    BinRange { from: 2221, to: 2720, digits: 4, brand: Brand::Mastercard, lengths: &[16] },
    BinRange { from: 51, to: 55, digits: 2, brand: Brand::Mastercard, lengths: &[16] },
    BinRange { from: 6011, to: 6011, digits: 4, brand: Brand::Discover, lengths: &[16, 19] },
    BinRange { from: 644, to: 649, digits: 3, brand: Brand::Discover, lengths: &[16, 19] },
    BinRange { from: 65, to: 65, digits: 2, brand: Brand::Discover, lengths: &[16, 19] },
    BinRange { from: 3528, to: 3589, digits: 4, brand: Brand::Jcb, lengths: &[16, 17, 18, 19] },
    BinRange { from: 50, to: 50, digits: 2, brand: Brand::Maestro, lengths: &[12, 13, 14, 15, 16, 17, 18, 19] },
    BinRange { from: 56, to: 69, digits: 2, brand: Brand::Maestro, lengths: &[12, 13, 14, 15, 16, 17, 18, 19] },
    BinRange { from: 4, to: 4, digits: 1, brand: Brand::Visa, lengths: &[13, 16, 19] },
];

/// The brand a (possibly partial) number belongs to.
pub fn detect_brand(digits: &str) -> Option<BinRange> {
    BIN_TABLE.iter().copied().find(|r| {
        let n = usize::from(r.digits);
        digits.len() >= n && digits[..n].parse::<u32>().is_ok_and(|p| (r.from..=r.to).contains(&p))
    })
}

/// The Luhn (mod 10) check.
pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c.wrapping_sub(b'0'));
        if d > 9 {
            return false;
        }
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Why card data was refused. The variants name the field, never its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("card number is not valid")]
    Number,
    #[error("card brand is not supported")]
    Brand,
    #[error("expiry date is not valid")]
    Expiry,
    #[error("card has expired")]
    Expired,
    #[error("security code is not valid")]
    Cvc,
    #[error("card holder name is not valid")]
    Holder,
}

impl CardError {
    /// The request property the error concerns.
    pub fn property(self) -> &'static str {
        match self {
            CardError::Number | CardError::Brand => "card.number",
            CardError::Expiry | CardError::Expired => "card.expiry",
            CardError::Cvc => "card.cvc",
            CardError::Holder => "card.holderName",
        }
    }
}

/// A card number (PAN). Never printed; wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Accepts digits with optional spaces or dashes; checks length, brand and Luhn.
    pub fn parse(input: &str) -> Result<(CardNumber, Brand), CardError> {
        let digits: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) || !luhn_ok(&digits) {
            return Err(CardError::Number);
        }
        let range = detect_brand(&digits).ok_or(CardError::Brand)?;
        if !range.lengths.contains(&(digits.len() as u8)) {
            return Err(CardError::Number);
        }
        Ok((CardNumber(digits), range.brand))
    }

    /// The digits, for the provider request only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// BIN 6 + `****` + last 4 (CONTRACT §8).
    pub fn masked(&self) -> String {
        let n = self.0.len();
        format!("{}****{}", &self.0[..6], &self.0[n - 4..])
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl Drop for CardNumber {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A card security code. Never printed, never stored; wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Cvc(String);

impl Cvc {
    pub fn parse(input: &str, brand: Brand) -> Result<Cvc, CardError> {
        if input.len() == brand.cvc_len() && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Cvc(input.to_owned()))
        } else {
            Err(CardError::Cvc)
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Cvc {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for Cvc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cvc(***)")
    }
}

fn wipe(s: &mut String) {
    // Overwrite in place with zeros (valid UTF-8), then empty the string.
    let len = s.len();
    s.clear();
    s.extend(std::iter::repeat_n('\0', len));
    s.clear();
}

/// An expiry month and year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub month: u8,
    pub year: u16,
}

impl Expiry {
    /// `MM/YY`, `MM/YYYY` or `MM-YY`; refused when the card's last valid month is before
    /// `today` (year, month).
    pub fn parse(input: &str, today: (i64, u32)) -> Result<Expiry, CardError> {
        let (m, y) = input.trim().split_once(['/', '-']).ok_or(CardError::Expiry)?;
        let (m, y) = (m.trim(), y.trim());
        if m.is_empty()
            || m.len() > 2
            || !m.bytes().all(|b| b.is_ascii_digit())
            || !y.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(CardError::Expiry);
        }
        let month: u8 = m.parse().map_err(|_| CardError::Expiry)?;
        let year: u16 = match y.len() {
            2 => 2000 + y.parse::<u16>().map_err(|_| CardError::Expiry)?,
            4 => y.parse().map_err(|_| CardError::Expiry)?,
            _ => return Err(CardError::Expiry),
        };
        if !(1..=12).contains(&month) {
            return Err(CardError::Expiry);
        }
        let e = Expiry { month, year };
        if (i64::from(year), u32::from(month)) < today {
            return Err(CardError::Expired);
        }
        if i64::from(year) > today.0 + 30 {
            return Err(CardError::Expiry);
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_cards_are_valid_and_branded() {
        for (n, brand) in [
            ("4111 1111 1111 1111", Brand::Visa),
            ("5555 5555 5555 4444", Brand::Mastercard),
            ("3782 822463 10005", Brand::Amex),
            ("4000 0000 0000 0002", Brand::Visa),
            ("4000 0000 0000 9995", Brand::Visa),
            ("4000 0000 0000 0069", Brand::Visa),
            ("4100 0000 0000 0019", Brand::Visa),
            ("4000 0000 0000 3220", Brand::Visa),
            ("4000 0000 0000 0259", Brand::Visa),
            ("4000 0000 0000 0267", Brand::Visa),
            ("4000 0000 0000 0408", Brand::Visa),
            ("4000 0000 0000 0341", Brand::Visa),
            ("4000 0000 0000 5126", Brand::Visa),
            ("2223 0000 4841 0010", Brand::Mastercard),
        ] {
            let (_, b) = CardNumber::parse(n).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(b, brand, "{n}");
        }
    }

    #[test]
    fn bad_numbers_are_refused() {
        assert_eq!(CardNumber::parse("4111 1111 1111 1112").unwrap_err(), CardError::Number);
        assert_eq!(CardNumber::parse("4111").unwrap_err(), CardError::Number);
        assert_eq!(CardNumber::parse("41111111111111111111").unwrap_err(), CardError::Number);
        assert_eq!(CardNumber::parse("4111a11111111111").unwrap_err(), CardError::Number);
        assert_eq!(CardNumber::parse("9999999999999995").unwrap_err(), CardError::Brand);
    }

    #[test]
    fn numbers_never_print_in_full() {
        let (n, _) = CardNumber::parse("4111111111111111").unwrap();
        assert_eq!(n.masked(), "411111****1111");
        assert_eq!(format!("{n}"), "411111****1111");
        assert_eq!(format!("{n:?}"), "CardNumber(411111****1111)");
        let c = Cvc::parse("737", Brand::Visa).unwrap();
        assert_eq!(format!("{c:?}"), "Cvc(***)");
    }

    #[test]
    fn cvc_length_follows_the_brand() {
        assert!(Cvc::parse("123", Brand::Visa).is_ok());
        assert!(Cvc::parse("1234", Brand::Visa).is_err());
        assert!(Cvc::parse("1234", Brand::Amex).is_ok());
        assert!(Cvc::parse("123", Brand::Amex).is_err());
        assert!(Cvc::parse("12a", Brand::Visa).is_err());
    }

    #[test]
    fn expiry_must_be_a_real_future_month() {
        let today = (2026, 11);
        assert_eq!(Expiry::parse("11/26", today), Ok(Expiry { month: 11, year: 2026 }));
        assert_eq!(Expiry::parse("12/2030", today), Ok(Expiry { month: 12, year: 2030 }));
        assert_eq!(Expiry::parse("10/26", today), Err(CardError::Expired));
        assert_eq!(Expiry::parse("13/27", today), Err(CardError::Expiry));
        assert_eq!(Expiry::parse("00/27", today), Err(CardError::Expiry));
        assert_eq!(Expiry::parse("1227", today), Err(CardError::Expiry));
        assert_eq!(Expiry::parse("12/99", today), Err(CardError::Expiry));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn with_check_digit(body: &str) -> String {
            (0..10).map(|d| format!("{body}{d}")).find(|n| luhn_ok(n)).unwrap_or_default()
        }

        proptest! {
            #[test]
            fn masking_shows_at_most_bin6_and_last4(body in "4[0-9]{14}") {
                let n = with_check_digit(&body);
                let (pan, _) = CardNumber::parse(&n).unwrap();
                let m = pan.masked();
                prop_assert_eq!(m.chars().filter(char::is_ascii_digit).count(), 10);
                prop_assert!(!m.contains(&n[6..12]));
            }

            #[test]
            fn one_changed_digit_breaks_luhn(body in "[0-9]{15}", pos in 0usize..16, delta in 1u8..10) {
                let n = with_check_digit(&body);
                let mut b = n.into_bytes();
                b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
                prop_assert!(!luhn_ok(std::str::from_utf8(&b).unwrap()));
            }

            #[test]
            fn parsing_never_panics(s in "\\PC{0,30}") {
                let _ = CardNumber::parse(&s);
                let _ = Expiry::parse(&s, (2026, 11));
            }
        }
    }
}
