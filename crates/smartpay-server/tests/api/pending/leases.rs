//! The job queue under failure: a worker that died holding leases (D2), and a provider that
//! fails every poll (D4): the per-provider poll ceiling, backoff up to its cap, and Get Payment
//! Status answering throughout.

use std::sync::atomic::Ordering;

use smartpay_domain::modification::CaptureMode;

use super::super::notifications::Receiver;
use super::*;

/// How long a worker's claim holds (`workers::JOB_LEASE_MS`).
const LEASE_MS: i64 = 60_000;

#[tokio::test]
async fn jobs_of_a_worker_that_died_wait_for_its_lease_then_another_worker_finishes_them_once() {
    let (app, clock) = clock_app(|c| c.sandbox_pending_delay_ms = 0).await;
    let a = app.merchant.clone();
    app.set_mode(&a, CaptureMode::Manual, None, None).await;
    let receiver = Receiver::start().await;
    app.notify_to(&a, &receiver.url).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let card = if i % 2 == 0 { "4000000000000259" } else { "4000000000000267" };
        ids.push(app.pay_as(&a, 10.99, card).await);
    }
    clock.advance_ms(app.state().config.pending_first_poll_ms as i64);
    // A worker claims every due job, resolves four of them without recording that the jobs are
    // done, and dies.
    let state = app.state();
    let claimed = state.store.claim_due_jobs(clock.now(), LEASE_MS, 50).await.unwrap();
    assert_eq!(claimed.len(), 12);
    for job in &claimed[..4] {
        let done = smartpay_server::resolve::run(state, job).await.unwrap();
        assert_eq!(done, smartpay_server::resolve::Resolution::Done);
    }
    drop(claimed);
    assert_eq!(still_pending(&app, &a, &ids).await, 8);
    assert_eq!(run_due(&app, 2).await, 0, "leased jobs are nobody else's");
    clock.advance_ms(LEASE_MS - 1);
    assert_eq!(run_due(&app, 2).await, 0, "taken before the lease ended");
    assert_eq!(still_pending(&app, &a, &ids).await, 8);
    clock.advance_ms(1);
    assert_eq!(run_due(&app, 2).await, 8, "only the unfinished jobs are left");
    assert_eq!(still_pending(&app, &a, &ids).await, 0);
    assert_eq!(resolution_jobs_left(&app).await, 0);
    for (i, id) in ids.iter().enumerate() {
        let p = app.state().store.payment(&a.merchant_key, id).await.unwrap().unwrap();
        let expected = if i % 2 == 0 { "AUTHORIZATION_COMPLETED" } else { "AUTHORIZATION_FAILED" };
        assert_eq!(p.status.as_str(), expected, "{p:?}");
        let finals = p.history.iter().filter(|h| h.status.as_str() == expected).count();
        assert_eq!(finals, 1, "one final transition: {p:?}");
        let notified = app.notifications_of(&a, id).await;
        assert_eq!(notified.len(), 1, "{notified:?}");
        assert_eq!(notified[0]["status"], expected);
    }
    clock.advance_ms(10 * LEASE_MS);
    assert_eq!(run_due(&app, 2).await, 0);
    app.assert_verified().await;
}

/// How many of `ids` are still AUTHORIZATION_PENDING.
async fn still_pending(app: &TestApp, c: &Creds, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        n += usize::from(status_of(app, c, id).await == "AUTHORIZATION_PENDING");
    }
    n
}

/// Pending-resolution jobs still queued.
async fn resolution_jobs_left(app: &TestApp) -> usize {
    let kinds = [JobKind::ResolveAuthorization, JobKind::ResolveModification];
    app.state().store.jobs(&kinds, 10_000).await.unwrap().len()
}

#[tokio::test]
async fn a_provider_failing_every_poll_is_polled_no_faster_than_its_ceiling_while_status_still_answers() {
    const RATE: u32 = 5;
    const SECONDS: i64 = 60;
    const STEP_MS: i64 = 100;
    let (app, clock) = payu_app(|c| {
        c.provider_polls_per_second = RATE;
        c.pending_first_poll_ms = 1000;
        c.pending_poll_initial_ms = 1000;
        c.pending_poll_max_ms = 4000;
        c.challenge_deadline_seconds = 3600;
        c.pending_deadline_seconds = 3600;
    })
    .await;
    let b = app.other.clone();
    let payu = app.payu();
    let mut ids = Vec::new();
    for _ in 0..40 {
        let (id, order) = app.start_payu(&b, 10.99).await;
        payu.script(&order, json!({"failPolls": 1_000_000})).await;
        ids.push(id);
    }
    let reads_before = payu.stats().await.status_reads;
    let unanswered_before = metric(&app, "smartpay_pending_polls_unanswered_total").await;
    for step in 1..=SECONDS * 1000 / STEP_MS {
        clock.advance_ms(STEP_MS);
        run_due(&app, 1).await;
        if step % 50 == 0 {
            let id = &ids[(step / 50) as usize % ids.len()];
            let view = app.view(&b, id).await;
            assert_eq!(view["paymentStatus"], "AUTHORIZATION_PENDING", "{view}");
        }
    }
    let reads = payu.stats().await.status_reads - reads_before;
    let ceiling = u64::from(RATE) * SECONDS as u64 + u64::from(RATE);
    assert!(reads <= ceiling, "{reads} polls in {SECONDS} s: more than the ceiling allows ({ceiling})");
    // 40 payments polled every 4 s at most want 10 polls a second: the ceiling was what held.
    assert!(reads >= ceiling * 8 / 10, "only {reads} polls: the test did not reach the ceiling");
    assert!(app.state().metrics.counters.polls_throttled.load(Ordering::SeqCst) > 0);
    let unanswered = metric(&app, "smartpay_pending_polls_unanswered_total").await - unanswered_before;
    assert_eq!(unanswered as u64, reads, "every failed poll is counted");
    for id in &ids {
        assert_eq!(status_of(&app, &b, id).await, "AUTHORIZATION_PENDING");
    }
}

#[tokio::test]
async fn polls_of_a_failing_provider_back_off_doubling_up_to_the_cap_then_recover() {
    let (initial, max) = (1000i64, 16_000i64);
    let (app, clock) = payu_app(|c| {
        c.provider_polls_per_second = 1000;
        c.pending_first_poll_ms = 1000;
        c.pending_poll_initial_ms = initial as u64;
        c.pending_poll_max_ms = max as u64;
        c.challenge_deadline_seconds = 3600;
    })
    .await;
    let b = app.other.clone();
    let payu = app.payu();
    let mut payments = Vec::new();
    for _ in 0..3 {
        let (id, order) = app.start_payu(&b, 10.99).await;
        payu.script(&order, json!({"failPolls": 1_000_000})).await;
        payments.push((id, order));
    }
    // Per payment: the last (attempts, wait) seen.
    let mut last: Vec<(u32, i64)> = vec![(0, 0); payments.len()];
    while last.iter().any(|(attempts, _)| *attempts < 10) {
        let mut next = i64::MAX;
        for (id, _) in &payments {
            next = next.min(resolution_job(&app, id).await.unwrap().job.due_at.0);
        }
        clock.set(smartpay_domain::Millis(next));
        assert!(run_due(&app, 1).await >= 1);
        for (i, (id, _)) in payments.iter().enumerate() {
            let job = resolution_job(&app, id).await.unwrap().job;
            let (seen, previous_wait) = last[i];
            if job.attempts == seen {
                continue;
            }
            assert_eq!(job.attempts, seen + 1, "one poll per run");
            let wait = job.due_at.0 - clock.now().0;
            let cap = (initial << (job.attempts - 1).min(30)).min(max);
            assert!(
                wait >= cap / 2 && wait <= cap,
                "poll {}: waits {wait} ms, not in [{}, {cap}]",
                job.attempts,
                cap / 2
            );
            let previous_cap = (initial << job.attempts.saturating_sub(2).min(30)).min(max);
            if job.attempts > 1 && 2 * previous_cap <= max {
                assert!(wait >= previous_wait, "poll {}: waits {wait} ms after {previous_wait} ms", job.attempts);
            }
            assert_eq!(job.last_error.as_deref(), Some("no answer from the provider"));
            last[i] = (job.attempts, wait);
            let view = app.view(&b, id).await;
            assert_eq!(view["paymentStatus"], "AUTHORIZATION_PENDING");
        }
    }
    // The provider recovers: the next poll authorizes (and captures) each payment.
    for (_, order) in &payments {
        payu.script(order, json!({"failPolls": 0, "approve": true})).await;
    }
    clock.advance_ms(max);
    run_due(&app, 1).await;
    for (id, _) in &payments {
        assert_eq!(status_of(&app, &b, id).await, "CAPTURED");
    }
    app.assert_verified().await;
}
