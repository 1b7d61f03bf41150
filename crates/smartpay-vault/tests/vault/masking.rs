//! G6: the masked form shows exactly BIN 6 and the last 4 digits, never more.

use proptest::prelude::*;
use smartpay_domain::card::{CardNumber, luhn_ok};
use smartpay_vault::masked;

/// `body` completed with its Luhn check digit.
fn with_check_digit(body: &str) -> String {
    (0..10).map(|d| format!("{body}{d}")).find(|n| luhn_ok(n)).unwrap()
}

/// Prefixes the domain accepts at every length from 12 to 19 (Maestro), and at some (others).
fn prefix() -> impl Strategy<Value = String> {
    prop_oneof!["50", "5[6-9]", "6[0-9]", "4", "5[1-5]", "3[47]", "35[2-8][0-9]", "6011"]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_global_rejects: 4096, ..ProptestConfig::default() })]

    #[test]
    fn masked_shows_exactly_bin6_and_last4(prefix in prefix(), len in 12usize..=19, fill in "[0-9]{19}") {
        let body = format!("{prefix}{fill}");
        let pan = with_check_digit(&body[..len - 1]);
        let parsed = CardNumber::parse(&pan);
        // Some prefixes do not exist at every length; the Maestro prefixes cover all of them.
        prop_assume!(parsed.is_ok());
        let (card, _) = parsed.unwrap();
        let m = masked(&card);
        prop_assert_eq!(&m, &format!("{}****{}", &pan[..6], &pan[len - 4..]));
        prop_assert_eq!(m.chars().filter(char::is_ascii_digit).count(), 10);
        prop_assert!(!m.contains(&pan));
    }
}

#[test]
fn the_shortest_and_longest_numbers_are_masked() {
    let twelve = with_check_digit("50000000001");
    let nineteen = with_check_digit("501234567890123456");
    for pan in [twelve, nineteen] {
        let (card, _) = CardNumber::parse(&pan).unwrap();
        let n = pan.len();
        assert_eq!(masked(&card), format!("{}****{}", &pan[..6], &pan[n - 4..]));
    }
}
