//! The invariant verifier: every stored payment checked against the money rules and the status
//! model (`smartpay_domain::modification::verify`). `smartpay verify` prints its report; the
//! tests run it after every concurrency and crash scenario.

use smartpay_store::{Store, StoreError};

/// One broken rule of one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub transaction_id: String,
    pub problem: String,
}

/// What a verification found.
#[derive(Debug, Default)]
pub struct Report {
    pub checked: u64,
    pub violations: Vec<Violation>,
}

/// Checks every payment in `store`, a page at a time.
pub async fn verify_store(store: &dyn Store) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut after = String::new();
    loop {
        let keys = store.payment_keys_after(&after, 500).await?;
        let Some(last) = keys.last() else { break };
        after = last.1.clone();
        for (merchant, id) in keys {
            let Some(p) = store.payment(&merchant, &id).await? else { continue };
            report.checked += 1;
            let mut problems = smartpay_domain::modification::verify(p.status, p.amount_minor, &p.entries());
            let mut ids: Vec<&str> = p.modifications.iter().map(|m| m.modification_id.as_str()).collect();
            ids.sort_unstable();
            if ids.windows(2).any(|w| w[0] == w[1]) {
                problems.push("a modificationId with two modifications".into());
            }
            if p.modifications.iter().any(|m| m.currency != p.currency) {
                problems.push("a modification in another currency than the payment's".into());
            }
            report
                .violations
                .extend(problems.into_iter().map(|problem| Violation { transaction_id: id.clone(), problem }));
        }
    }
    Ok(report)
}
