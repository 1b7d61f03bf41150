//! The job queue (scheduled modifications and pending resolution): leases that never overlap,
//! lease tokens that fence out a worker whose lease ran out, nudges, operator views, and the
//! provider notices inbox.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use smartpay_domain::{Event, Millis, PaymentStatus};
use smartpay_store::*;

use crate::support::*;

/// A checkout of `merchant` submitted at 2 000 with a resolution job due at `due`.
async fn pending_with_job(store: &Shared, merchant: &str, id: &str, due: i64) {
    created(store, merchant, id).await;
    let update = PaymentUpdate {
        provider: Some("sandbox".into()),
        schedule: vec![(JobKind::ResolveAuthorization, Millis(due))],
        ..Default::default()
    };
    submit(store, id, update).await;
}

/// Jobs are scheduled with a status change, once per kind and payment; a claim takes due
/// jobs only, counts an attempt, and hides them from other claims for its lease.
async fn a_claim_leases_due_jobs_and_counts_an_attempt(store: &Shared) {
    merchant(store, "m1").await;
    pending_with_job(store, "m1", "p1", 5_000).await;
    pending_with_job(store, "m1", "p2", 4_000).await;
    pending_with_job(store, "m1", "p3", 9_000).await;
    // Scheduling the same kind again for a payment keeps the first job.
    store
        .record_facts(
            "p1",
            PaymentStatus::AuthorizationPending,
            PaymentUpdate { schedule: vec![(JobKind::ResolveAuthorization, Millis(1))], ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(store.jobs(&[JobKind::ResolveAuthorization], 10).await.unwrap().len(), 3);
    assert!(store.claim_due_jobs(Millis(3_999), 60_000, 10).await.unwrap().is_empty(), "nothing is due yet");
    let jobs = store.claim_due_jobs(Millis(5_000), 60_000, 10).await.unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j.payment_id.as_str()).collect();
    assert_eq!(ids, ["p2", "p1"], "due jobs, the earliest first");
    let j = &jobs[1];
    assert_eq!((j.kind, j.merchant_id.as_str(), j.target.as_str()), (JobKind::ResolveAuthorization, "m1", ""));
    assert_eq!((j.attempts, j.created_at, j.due_at, j.last_error.clone()), (1, Millis(2_000), Millis(5_000), None));
    assert!(!j.lease_token.is_empty());
    assert_eq!(jobs[0].lease_token, j.lease_token, "one claim, one token");
    assert!(store.claim_due_jobs(Millis(5_000), 60_000, 10).await.unwrap().is_empty(), "leased jobs are invisible");
    let limited = store.claim_due_jobs(Millis(9_000), 60_000, 1).await.unwrap();
    assert_eq!(limited.iter().map(|j| j.payment_id.as_str()).collect::<Vec<_>>(), ["p3"]);

    let views = store.jobs(&[JobKind::ResolveAuthorization], 10).await.unwrap();
    let p1 = views.iter().find(|v| v.job.payment_id == "p1").unwrap();
    assert_eq!(
        (p1.leased_until, p1.payment_status, p1.provider.as_deref()),
        (Millis(65_000), PaymentStatus::AuthorizationPending, Some("sandbox"))
    );
    assert_eq!(p1.job.attempts, 1);
}
contract!(a_claim_leases_due_jobs_and_counts_an_attempt);

/// When a lease ends the job comes back with a new token; the old token can neither
/// complete nor retry it.
async fn an_expired_lease_hands_the_job_over_and_fences_the_old_worker(store: &Shared) {
    merchant(store, "m1").await;
    pending_with_job(store, "m1", "p1", 1_000).await;
    let first = store.claim_due_jobs(Millis(2_000), 1_000, 10).await.unwrap().pop().unwrap();
    assert!(store.claim_due_jobs(Millis(2_999), 1_000, 10).await.unwrap().is_empty(), "still leased");
    let second = store.claim_due_jobs(Millis(3_000), 1_000, 10).await.unwrap().pop().unwrap();
    assert_eq!((second.id, second.attempts), (first.id, 2));
    assert_ne!(second.lease_token, first.lease_token);
    assert!(!store.complete_job(first.id, &first.lease_token).await.unwrap(), "the lease was lost");
    assert!(!store.retry_job(first.id, &first.lease_token, Millis(0), Some("late".into())).await.unwrap());
    assert_eq!(
        store.jobs(&[JobKind::ResolveAuthorization], 10).await.unwrap()[0].job.last_error,
        None,
        "nothing changed"
    );
    assert!(store.complete_job(second.id, &second.lease_token).await.unwrap());
    assert!(store.jobs(&[JobKind::ResolveAuthorization], 10).await.unwrap().is_empty());
    assert!(!store.complete_job(second.id, &second.lease_token).await.unwrap(), "completed once");
}
contract!(an_expired_lease_hands_the_job_over_and_fences_the_old_worker);

/// A retry runs the job again at the given time, keeping the error for operators.
async fn a_retried_job_runs_again_later_with_its_error(store: &Shared) {
    merchant(store, "m1").await;
    pending_with_job(store, "m1", "p1", 1_000).await;
    let job = store.claim_due_jobs(Millis(2_000), 60_000, 10).await.unwrap().pop().unwrap();
    assert!(store.retry_job(job.id, &job.lease_token, Millis(5_000), Some("provider timeout".into())).await.unwrap());
    let view = store.jobs(&[JobKind::ResolveAuthorization], 10).await.unwrap().pop().unwrap();
    assert_eq!(
        (view.job.due_at, view.leased_until, view.job.last_error.as_deref()),
        (Millis(5_000), Millis(0), Some("provider timeout"))
    );
    assert!(store.claim_due_jobs(Millis(4_999), 60_000, 10).await.unwrap().is_empty());
    let again = store.claim_due_jobs(Millis(5_000), 60_000, 10).await.unwrap().pop().unwrap();
    assert_eq!((again.id, again.attempts, again.last_error.as_deref()), (job.id, 2, Some("provider timeout")));
    assert!(!store.retry_job(job.id, &job.lease_token, Millis(9_000), None).await.unwrap(), "an old claim's token");
}
contract!(a_retried_job_runs_again_later_with_its_error);

/// A nudge brings a payment's resolution jobs forward; one that comes while the job runs
/// is not lost (the retry runs at once). Other kinds are not nudged.
async fn nudges_bring_resolution_forward_and_are_not_lost_while_leased(store: &Shared) {
    merchant(store, "m1").await;
    pending_with_job(store, "m1", "p1", 50_000).await;
    assert!(store.poll_soon("p1", Millis(3_000)).await.unwrap());
    let job = store.claim_due_jobs(Millis(3_000), 60_000, 10).await.unwrap().pop().unwrap();
    assert_eq!(job.payment_id, "p1");
    // Nudged while leased: the retry's later due time gives way.
    assert!(store.poll_soon("p1", Millis(4_000)).await.unwrap());
    assert!(store.claim_due_jobs(Millis(4_000), 60_000, 10).await.unwrap().is_empty(), "the lease still holds");
    assert!(store.retry_job(job.id, &job.lease_token, Millis(90_000), None).await.unwrap());
    let again = store.claim_due_jobs(Millis(4_001), 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 1, "the nudge made the retry run at once");
    // A nudge never pushes a job later.
    assert!(store.retry_job(again[0].id, &again[0].lease_token, Millis(10_000), None).await.unwrap());
    assert!(store.poll_soon("p1", Millis(20_000)).await.unwrap());
    assert_eq!(store.jobs(&[JobKind::ResolveAuthorization], 10).await.unwrap()[0].job.due_at, Millis(10_000));

    authorized(store, "m1", "p2").await;
    store
        .record_facts(
            "p2",
            PaymentStatus::AuthorizationCompleted,
            PaymentUpdate { schedule: vec![(JobKind::DelayedCapture, Millis(80_000))], ..Default::default() },
        )
        .await
        .unwrap();
    assert!(!store.poll_soon("p2", Millis(5_000)).await.unwrap(), "a delayed capture is not a resolution");
    assert_eq!(store.jobs(&[JobKind::DelayedCapture], 10).await.unwrap()[0].job.due_at, Millis(80_000));
    assert!(!store.poll_soon("nope", Millis(5_000)).await.unwrap());
}
contract!(nudges_bring_resolution_forward_and_are_not_lost_while_leased);

/// A payment that leaves AUTHORIZATION_PENDING ends its authorization's resolution job.
async fn a_final_authorization_ends_its_resolution_job(store: &Shared) {
    merchant(store, "m1").await;
    pending_with_job(store, "m1", "p1", 50_000).await;
    pending_with_job(store, "m1", "p2", 50_000).await;
    store
        .apply_event(
            "p1",
            PaymentStatus::AuthorizationPending,
            Event::Authorized,
            Millis(3_000),
            PaymentUpdate::default(),
        )
        .await
        .unwrap();
    let left: Vec<String> =
        store.jobs(&[JobKind::ResolveAuthorization], 10).await.unwrap().into_iter().map(|v| v.job.payment_id).collect();
    assert_eq!(left, ["p2"]);
}
contract!(a_final_authorization_ends_its_resolution_job);

/// Several workers claiming at once (several nodes): every job runs exactly once.
async fn concurrent_claimers_run_each_job_exactly_once(store: &Shared) {
    merchant(store, "m1").await;
    for i in 0..40 {
        pending_with_job(store, "m1", &format!("p{i:02}"), 1_000 + i).await;
    }
    let runs: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = runs.clone();
    let finished = concurrently(store, 4, move |s, _| {
        let runs = seen.clone();
        async move {
            let mut mine = 0;
            loop {
                let jobs = s.claim_due_jobs(Millis(2_000), 600_000, 3).await.unwrap();
                if jobs.is_empty() {
                    return mine;
                }
                for j in jobs {
                    runs.lock().unwrap().push(j.payment_id.clone());
                    assert!(s.complete_job(j.id, &j.lease_token).await.unwrap(), "a claimed job was taken over");
                    mine += 1;
                }
            }
        }
    })
    .await;
    let runs = runs.lock().unwrap().clone();
    let unique: HashSet<&String> = runs.iter().collect();
    assert_eq!((runs.len(), unique.len()), (40, 40), "each job run once: {runs:?}");
    assert_eq!(finished.iter().sum::<i32>(), 40);
    assert!(store.jobs(&JobKind::ALL, 100).await.unwrap().is_empty());
}
contract!(concurrent_claimers_run_each_job_exactly_once);

/// Queue figures per kind: queued, due and the oldest; listings are oldest first.
async fn job_stats_and_listings_cover_every_kind(store: &Shared) {
    merchant(store, "m1").await;
    pending_with_job(store, "m1", "p1", 5_000).await;
    pending_with_job(store, "m1", "p2", 9_000).await;
    let stats = store.job_stats(Millis(6_000)).await.unwrap();
    assert_eq!(stats.len(), JobKind::ALL.len(), "one row per kind");
    let resolve = stats.iter().find(|s| s.kind == JobKind::ResolveAuthorization).unwrap();
    assert_eq!((resolve.queued, resolve.due, resolve.oldest), (2, 1, Some(Millis(2_000))));
    let capture = stats.iter().find(|s| s.kind == JobKind::DelayedCapture).unwrap();
    assert_eq!((capture.queued, capture.due, capture.oldest), (0, 0, None));
    assert_eq!(store.jobs(&[JobKind::ResolveAuthorization], 1).await.unwrap().len(), 1, "the limit holds");
    assert!(store.jobs(&[JobKind::Settlement], 10).await.unwrap().is_empty());
}
contract!(job_stats_and_listings_cover_every_kind);

/// An inbound provider notification is recorded once per (provider, event id), also when
/// the same notice arrives at several nodes at once.
async fn provider_notices_are_recorded_once(store: &Shared) {
    assert!(store.record_provider_notice("sandbox", "evt-1", Millis(1)).await.unwrap());
    assert!(!store.record_provider_notice("sandbox", "evt-1", Millis(2)).await.unwrap());
    assert!(store.record_provider_notice("payu", "evt-1", Millis(3)).await.unwrap());
    let firsts = concurrently(store, 16, |s, _| async move {
        s.record_provider_notice("sandbox", "evt-2", Millis(4)).await.unwrap()
    })
    .await;
    assert_eq!(firsts.iter().filter(|first| **first).count(), 1, "{firsts:?}");
}
contract!(provider_notices_are_recorded_once);
