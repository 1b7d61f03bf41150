//! Card-number helpers for the vault: the keyed fingerprint that finds duplicates, and the
//! masked display form.

use smartpay_domain::card::CardNumber;

use crate::keys::FingerprintKey;

/// HMAC-SHA256 of the card number's digits under the fingerprint key: equal for the same card
/// under the same key, unrelated under another key, and unlike an unkeyed hash useless to
/// anyone who lacks the key (a PAN has too little entropy to survive a plain hash).
pub fn fingerprint(key: &FingerprintKey, card: &CardNumber) -> [u8; 32] {
    // `CardNumber` holds digits only (spaces and dashes are dropped when it is parsed).
    key.mac(card.expose().as_bytes())
}

/// The display form: BIN 6 + `****` + last 4 (CONTRACT §8). The domain's masking, re-exported
/// so vault callers have one place to look.
pub fn masked(card: &CardNumber) -> String {
    card.masked()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_formatting() {
        let key = FingerprintKey::from_bytes(&[4; 32]).unwrap();
        let (a, _) = CardNumber::parse("4111 1111 1111 1111").unwrap();
        let (b, _) = CardNumber::parse("4111-1111-1111-1111").unwrap();
        assert_eq!(fingerprint(&key, &a), fingerprint(&key, &b));
        assert_eq!(masked(&a), "411111****1111");
    }
}
