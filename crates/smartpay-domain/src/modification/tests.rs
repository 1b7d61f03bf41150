use super::*;
use crate::status::transition;
use ModificationStatus as M;
use PaymentStatus as S;

fn entry(kind: ModificationType, status: M, amount: i64) -> Entry {
    Entry { kind, status, amount_minor: amount }
}

#[test]
fn names_round_trip() {
    for t in ModificationType::ALL {
        assert_eq!(ModificationType::parse(t.as_str()), Some(t));
    }
    for s in M::ALL {
        assert_eq!(M::parse(s.as_str()), Some(s));
    }
}

#[test]
fn the_ledger_sums_pending_and_final_amounts_apart() {
    let l = Ledger::of(
        10_000,
        &[
            entry(ModificationType::Capture, M::Captured, 6_000),
            entry(ModificationType::Capture, M::CapturePending, 1_000),
            entry(ModificationType::Capture, M::CaptureFailed, 9_999),
            entry(ModificationType::Refund, M::Refunded, 2_000),
            entry(ModificationType::Refund, M::RefundPending, 500),
        ],
    );
    assert_eq!((l.captured, l.capture_pending, l.refunded, l.refund_pending), (6_000, 1_000, 2_000, 500));
    assert_eq!(l.capturable(), 3_000);
    assert_eq!(l.refundable(), 3_500);
}

#[test]
fn illegal_requests_are_refused_with_their_reason() {
    let fresh = Ledger::of(10_000, &[]);
    // A5: refund before capture, capture after cancel or expiry, cancel after capture.
    assert_eq!(
        plan(S::AuthorizationCompleted, &fresh, Request::Refund(None)),
        Err(Refusal::InvalidState(S::AuthorizationCompleted))
    );
    for s in
        [S::Created, S::AuthorizationPending, S::AuthorizationFailed, S::Cancelled, S::Expired, S::Refunded, S::Settled]
    {
        assert_eq!(plan(s, &fresh, Request::Capture(None)), Err(Refusal::InvalidState(s)), "{s}");
    }
    let captured = Ledger::of(10_000, &[entry(ModificationType::Capture, M::Captured, 10_000)]);
    assert_eq!(plan(S::Captured, &captured, Request::Cancel), Err(Refusal::InvalidState(S::Captured)));
    let refunded = Ledger::of(
        10_000,
        &[entry(ModificationType::Capture, M::Captured, 10_000), entry(ModificationType::Refund, M::Refunded, 10_000)],
    );
    assert_eq!(plan(S::Refunded, &refunded, Request::Refund(None)), Err(Refusal::InvalidState(S::Refunded)));
    let cancelling = Ledger::of(10_000, &[entry(ModificationType::Cancellation, M::CancellationPending, 10_000)]);
    assert_eq!(
        plan(S::AuthorizationCompleted, &cancelling, Request::Capture(None)),
        Err(Refusal::InvalidState(S::AuthorizationCompleted)),
        "no capture while a cancellation is in flight"
    );
}

#[test]
fn amounts_beyond_what_is_left_are_refused_with_the_remaining_amount() {
    let l = Ledger::of(10_000, &[entry(ModificationType::Capture, M::CapturePending, 7_000)]);
    assert_eq!(
        plan(S::CapturePending, &l, Request::Capture(Some(3_001))),
        Err(Refusal::ExceedsCapturable { remaining: 3_000 })
    );
    assert_eq!(
        plan(S::CapturePending, &l, Request::Capture(Some(3_000))),
        Ok(Plan { kind: ModificationType::Capture, amount_minor: 3_000, event: None })
    );
    let full = Ledger::of(10_000, &[entry(ModificationType::Capture, M::CapturePending, 10_000)]);
    assert_eq!(
        plan(S::CapturePending, &full, Request::Capture(None)),
        Err(Refusal::ExceedsCapturable { remaining: 0 })
    );
    let c = Ledger::of(10_000, &[entry(ModificationType::Capture, M::Captured, 4_000)]);
    assert_eq!(
        plan(S::Captured, &c, Request::Refund(Some(4_001))),
        Err(Refusal::ExceedsRefundable { remaining: 4_000 })
    );
    assert_eq!(plan(S::Captured, &c, Request::Refund(Some(0))), Err(Refusal::ExceedsRefundable { remaining: 4_000 }));
    assert_eq!(
        plan(S::Captured, &c, Request::CancelOrRefund),
        Ok(Plan { kind: ModificationType::Refund, amount_minor: 4_000, event: None })
    );
    assert_eq!(
        plan(S::AuthorizationCompleted, &Ledger::of(10_000, &[]), Request::CancelOrRefund),
        Ok(Plan { kind: ModificationType::Cancellation, amount_minor: 10_000, event: None })
    );
}

#[test]
fn outcomes_move_the_payment_as_the_contract_says() {
    let none = Ledger::of(10_000, &[entry(ModificationType::Capture, M::CaptureFailed, 10_000)]);
    assert_eq!(on_outcome(S::CapturePending, &none, M::CaptureFailed), Some(Event::CaptureFailed));
    let other_in_flight = Ledger::of(
        10_000,
        &[
            entry(ModificationType::Capture, M::CaptureFailed, 5_000),
            entry(ModificationType::Capture, M::CapturePending, 5_000),
        ],
    );
    assert_eq!(on_outcome(S::CapturePending, &other_in_flight, M::CaptureFailed), None);
    let half = Ledger::of(
        10_000,
        &[entry(ModificationType::Capture, M::Captured, 5_000), entry(ModificationType::Refund, M::Refunded, 2_000)],
    );
    assert_eq!(on_outcome(S::Captured, &half, M::Refunded), None, "a partial refund leaves CAPTURED");
    let all = Ledger::of(
        10_000,
        &[entry(ModificationType::Capture, M::Captured, 5_000), entry(ModificationType::Refund, M::Refunded, 5_000)],
    );
    assert_eq!(on_outcome(S::Settled, &all, M::Refunded), Some(Event::RefundedInFull));
    assert_eq!(on_outcome(S::AuthorizationCompleted, &none, M::Cancelled), Some(Event::Cancelled));
    assert_eq!(on_outcome(S::AuthorizationCompleted, &none, M::CancellationFailed), None);
}

mod model {
    //! A6: random operation sequences against a reference model written plainly, as lists of
    //! amounts, without the ledger: both must accept and refuse the same requests and reach the
    //! same statuses, and `verify` must find nothing.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Capture(Option<i64>),
        Refund(Option<i64>),
        Cancel,
        CancelOrRefund,
        /// The provider answers the oldest pending modification.
        Resolve(bool),
        Settle,
    }

    fn op() -> impl Strategy<Value = Op> {
        let amount = prop_oneof![Just(None), (1i64..12_000).prop_map(Some)];
        prop_oneof![
            amount.clone().prop_map(Op::Capture),
            amount.prop_map(Op::Refund),
            Just(Op::Cancel),
            Just(Op::CancelOrRefund),
            any::<bool>().prop_map(Op::Resolve),
            Just(Op::Settle),
        ]
    }

    /// The reference: every modification as (kind, amount, state) with state 0 pending, 1 ok, 2 failed.
    #[derive(Default)]
    struct Reference {
        mods: Vec<(char, i64, u8)>,
    }

    impl Reference {
        fn sum(&self, kind: char, states: &[u8]) -> i64 {
            self.mods.iter().filter(|m| m.0 == kind && states.contains(&m.2)).map(|m| m.1).sum()
        }
        fn accepts(&self, status: S, authorized: i64, op: Op) -> Option<(char, i64)> {
            let capturable = if self.sum('x', &[0, 1]) > 0 { 0 } else { authorized - self.sum('c', &[0, 1]) };
            let refundable = self.sum('c', &[1]) - self.sum('r', &[0, 1]);
            let within = |a: Option<i64>, left: i64| {
                let a = a.unwrap_or(left);
                (a > 0 && a <= left).then_some(a)
            };
            match op {
                Op::Capture(a) if matches!(status, S::AuthorizationCompleted | S::CapturePending | S::Captured) => {
                    within(a, capturable).map(|a| ('c', a))
                }
                Op::Refund(a) if matches!(status, S::Captured | S::Settled) => within(a, refundable).map(|a| ('r', a)),
                Op::Cancel | Op::CancelOrRefund
                    if status == S::AuthorizationCompleted
                        && self.sum('c', &[0, 1]) == 0
                        && self.sum('x', &[0, 1]) == 0 =>
                {
                    Some(('x', authorized))
                }
                Op::CancelOrRefund if matches!(status, S::Captured | S::Settled) => {
                    within(None, refundable).map(|a| ('r', a))
                }
                _ => None,
            }
        }
    }

    fn kind_of(c: char) -> ModificationType {
        match c {
            'c' => ModificationType::Capture,
            'r' => ModificationType::Refund,
            's' => ModificationType::Settlement,
            _ => ModificationType::Cancellation,
        }
    }

    fn entries(r: &Reference) -> Vec<Entry> {
        r.mods
            .iter()
            .map(|(k, a, st)| {
                let kind = kind_of(*k);
                let status = match st {
                    0 => kind.initial_status(),
                    1 => kind.final_status(true),
                    _ => kind.final_status(false),
                };
                Entry { kind, status, amount_minor: *a }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn random_operations_agree_with_the_reference_and_keep_the_invariants(ops in prop::collection::vec(op(), 1..30)) {
            let authorized = 10_000;
            let mut status = S::AuthorizationCompleted;
            let mut r = Reference::default();
            let mut settled = false;
            for op in ops {
                let mut es = entries(&r);
                let ledger = Ledger::of(authorized, &es);
                let request = match op {
                    Op::Capture(a) => Some(Request::Capture(a)),
                    Op::Refund(a) => Some(Request::Refund(a)),
                    Op::Cancel => Some(Request::Cancel),
                    Op::CancelOrRefund => Some(Request::CancelOrRefund),
                    Op::Resolve(_) | Op::Settle => None,
                };
                if let Some(request) = request {
                    let ours = plan(status, &ledger, request);
                    let theirs = r.accepts(status, authorized, op);
                    prop_assert_eq!(ours.is_ok(), theirs.is_some(), "{:?} in {} ({:?})", op, status, ledger);
                    if let (Ok(p), Some((k, a))) = (ours, theirs) {
                        prop_assert_eq!((p.kind, p.amount_minor), (kind_of(k), a));
                        if let Some(e) = p.event {
                            status = transition(status, e).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        }
                        r.mods.push((k, a, 0));
                    }
                } else if let Op::Resolve(ok) = op {
                    if let Some(i) = r.mods.iter().position(|m| m.2 == 0) {
                        r.mods[i].2 = if ok { 1 } else { 2 };
                        es = entries(&r);
                        let outcome = es[i].status;
                        if let Some(e) = on_outcome(status, &Ledger::of(authorized, &es), outcome) {
                            status = transition(status, e).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        }
                    }
                } else if status == S::Captured && !settled {
                    settled = true;
                    r.mods.push(('s', 0, 1));
                    status = transition(status, Event::Settled).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                let es = entries(&r);
                let problems = verify(status, authorized, &es);
                prop_assert!(problems.is_empty(), "{:?} after {:?}", problems, op);
            }
        }
    }
}
