//! D1: a thousand `PAYU` payments, each answered `PENDING` a scripted number of times before the
//! authorization, resolved by the job queue on a manual clock: all final within the bound, one
//! final transition and one signed notification each.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use smartpay_domain::modification::CaptureMode;

use super::super::notifications::{Receiver, unix};
use super::*;

/// A deterministic pseudo-random number of `PENDING` answers in 0..=20 for payment `i`.
fn pending_answers(i: u64) -> u32 {
    // splitmix64
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % 21) as u32
}

/// The latest a payment answered `PENDING` `k` times can be final, `first_ms` after it became
/// pending: every poll waits at most its backoff, and starts at most `step_ms` late.
fn bound_ms(k: u32, first_ms: i64, initial_ms: i64, max_ms: i64, step_ms: i64) -> i64 {
    let waits: i64 = (1..=k).map(|i| (initial_ms << (i - 1).min(30)).min(max_ms)).sum();
    first_ms + waits + i64::from(k + 1) * step_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_payu_payments_answered_pending_up_to_twenty_times_end_authorized_once_and_notified_once() {
    const N: u64 = 1000;
    const STEP_MS: i64 = 500;
    let (first, initial, max) = (1000, 1000, 8000);
    let (mut app, clock) = payu_app(|c| {
        c.provider_polls_per_second = 1_000_000;
        c.pending_first_poll_ms = first as u64;
        c.pending_poll_initial_ms = initial as u64;
        c.pending_poll_max_ms = max as u64;
        c.challenge_deadline_seconds = 900;
        c.pending_deadline_seconds = 3600;
    })
    .await;
    app.client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let a = app.merchant.clone();
    app.set_mode(&a, CaptureMode::Manual, None, None).await;
    let receiver = Receiver::start().await;
    let secret = app.notify_to(&a, &receiver.url).await;
    let payu = app.payu();
    let started = clock.now();
    let payments: Vec<(String, u32)> = futures_util::stream::iter(0..N)
        .map(|i| {
            let (app, a, payu) = (&app, &a, &payu);
            async move {
                let (id, order) = app.start_payu(a, 10.99).await;
                let k = pending_answers(i);
                payu.script(&order, json!({"approve": true, "pendingPolls": k})).await;
                (id, k)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let reads_before = payu.stats().await.status_reads;
    let deadline = started.plus_seconds(900);
    while !app.state().store.jobs(&[JobKind::ResolveAuthorization], 1).await.unwrap().is_empty() {
        assert!(clock.now() < deadline, "payments still pending at the deadline");
        clock.advance_ms(STEP_MS);
        run_due(&app, 4).await;
    }
    // Each payment: polled exactly k + 1 times, authorized once, within its bound.
    let polls: u64 = payments.iter().map(|(_, k)| u64::from(*k) + 1).sum();
    assert_eq!(payu.stats().await.status_reads - reads_before, polls, "some payment was polled twice at once");
    assert_eq!(app.state().metrics.counters.polls_throttled.load(std::sync::atomic::Ordering::SeqCst), 0);
    for (id, k) in &payments {
        let p = app.state().store.payment(&a.merchant_key, id).await.unwrap().unwrap();
        assert_eq!(p.status.as_str(), "AUTHORIZATION_COMPLETED", "{p:?}");
        let finals: Vec<_> = p.history.iter().filter(|h| h.status.as_str() == "AUTHORIZATION_COMPLETED").collect();
        assert_eq!(finals.len(), 1, "{p:?}");
        let took = finals[0].at.0 - started.0;
        assert!(took <= bound_ms(*k, first, initial, max, STEP_MS), "{id}: k={k}, final after {took} ms");
        assert!(p.history.iter().all(|h| h.status.as_str() != "AUTHORIZATION_FAILED"), "{p:?}");
    }
    // One signed notification per payment for that transition.
    assert_eq!(app.deliver_all().await, N as usize);
    let received = receiver.received();
    assert_eq!(received.len(), N as usize);
    let mut per_payment: HashMap<String, usize> = HashMap::new();
    let mut events = HashSet::new();
    for r in &received {
        let body = r.json();
        assert_eq!(body["metadata"]["status"], "AUTHORIZATION_COMPLETED", "{body}");
        assert_eq!(body["origin"], "automated", "{body}");
        assert_eq!(body["id"].as_str(), Some(r.event_id()));
        assert!(events.insert(r.event_id().to_owned()), "event id {} twice", r.event_id());
        *per_payment.entry(body["metadata"]["transactionId"].as_str().unwrap().to_owned()).or_default() += 1;
        assert_eq!(r.verify(&[&secret], unix(&clock)), Ok(()), "{body}");
    }
    assert_eq!(per_payment.len(), N as usize);
    assert!(payments.iter().all(|(id, _)| per_payment.get(id) == Some(&1)));
    assert_eq!(app.deliver_all().await, 0, "delivered ones are not sent again");
}
