//! The retry schedule: how long to wait before the next attempt, and when to give up.
//!
//! Delays grow 10 s, 30 s, 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 8 h, then stay at 8 h,
//! each with ±20 % jitter so that a receiver coming back is not hit by every merchant's
//! backlog at once. The last attempt is placed exactly at the horizon, so the schedule covers
//! it whole (CONTRACT §12: at least 24 h).

/// Base delay before attempt n+1 after n failed attempts (index n-1); the last repeats.
pub const SCHEDULE_MS: [i64; 10] = [
    10_000,
    30_000,
    60_000,
    5 * 60_000,
    15 * 60_000,
    30 * 60_000,
    3_600_000,
    2 * 3_600_000,
    4 * 3_600_000,
    8 * 3_600_000,
];

/// Largest jitter, in thousandths of the base delay.
const JITTER_PERMILLE: i64 = 200;

/// The delay before attempt `failed_attempts + 1`, `since_first_ms` after the first attempt
/// (or the event's creation), with ±20 % jitter; never past `horizon_ms` after the first
/// attempt (a delay that would pass it is shortened to land on it); `None` once the horizon is
/// reached: give up.
pub fn next_attempt_delay_ms(failed_attempts: u32, since_first_ms: i64, horizon_ms: i64) -> Option<i64> {
    delay_with_jitter(failed_attempts, since_first_ms, horizon_ms, random_jitter())
}

/// [`next_attempt_delay_ms`] with the jitter given, in thousandths of the base delay
/// (clamped to ±[`JITTER_PERMILLE`]).
pub(crate) fn delay_with_jitter(
    failed_attempts: u32,
    since_first_ms: i64,
    horizon_ms: i64,
    jitter_permille: i64,
) -> Option<i64> {
    let since = since_first_ms.max(0);
    if failed_attempts == 0 {
        return (since <= horizon_ms).then_some(0);
    }
    if since >= horizon_ms {
        return None;
    }
    let index = usize::try_from(failed_attempts - 1).unwrap_or(usize::MAX).min(SCHEDULE_MS.len() - 1);
    let base = SCHEDULE_MS[index];
    let jitter = jitter_permille.clamp(-JITTER_PERMILLE, JITTER_PERMILLE);
    let delay = base + base * jitter / 1000;
    Some(delay.min(horizon_ms - since))
}

/// A uniform jitter in [-200, 200] thousandths; none if the system has no randomness.
fn random_jitter() -> i64 {
    let mut buf = [0u8; 2];
    match getrandom::getrandom(&mut buf) {
        Ok(()) => i64::from(u16::from_le_bytes(buf)) % (2 * JITTER_PERMILLE + 1) - JITTER_PERMILLE,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    /// Times (since the first attempt) of every attempt until the schedule gives up.
    fn attempt_times(horizon: i64, jitter: impl Fn(u32) -> i64) -> Vec<i64> {
        let mut times = vec![0];
        let mut since = 0;
        let mut failed = 1;
        while let Some(d) = delay_with_jitter(failed, since, horizon, jitter(failed)) {
            assert!(d > 0, "attempt {failed} at {since} would not wait");
            since += d;
            times.push(since);
            failed += 1;
            assert!(failed < 1000, "the schedule never gives up");
        }
        times
    }

    #[test]
    fn without_jitter_the_schedule_is_the_table() {
        let delays: Vec<i64> = (1..=12).map(|n| delay_with_jitter(n, 0, 30 * DAY, 0).unwrap()).collect();
        assert_eq!(&delays[..10], &SCHEDULE_MS);
        assert_eq!(delays[10], 8 * HOUR, "capped");
        assert_eq!(delays[11], 8 * HOUR, "capped");
        assert_eq!(delay_with_jitter(u32::MAX, 0, 30 * DAY, 0), Some(8 * HOUR));
        assert_eq!(delay_with_jitter(0, 0, DAY, 0), Some(0), "the first attempt is immediate");
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(delay_with_jitter(1, 0, DAY, 200), Some(12_000));
        assert_eq!(delay_with_jitter(1, 0, DAY, -200), Some(8_000));
        assert_eq!(delay_with_jitter(1, 0, DAY, 10_000), Some(12_000), "clamped");
        for n in 1..=15 {
            for _ in 0..50 {
                let d = next_attempt_delay_ms(n, 0, 30 * DAY).unwrap();
                let base = SCHEDULE_MS[usize::try_from(n - 1).unwrap().min(9)];
                assert!(d >= base * 8 / 10 && d <= base * 12 / 10, "attempt {n}: {d} vs {base}");
            }
        }
    }

    #[test]
    fn growth_holds_even_against_worst_case_jitter() {
        // Each step's slowest draw is at least the previous step's fastest one.
        for n in 1..15 {
            let hi = delay_with_jitter(n, 0, 30 * DAY, 200).unwrap();
            let lo_next = delay_with_jitter(n + 1, 0, 30 * DAY, -200).unwrap();
            assert!(lo_next >= hi || n >= 10, "step {n}: {hi} then {lo_next}");
        }
    }

    #[test]
    fn gives_up_at_the_horizon_after_covering_it() {
        for jitter in [-200, 0, 200] {
            let times = attempt_times(DAY, |_| jitter);
            assert_eq!(*times.last().unwrap(), DAY, "jitter {jitter}: {times:?}");
            assert!(times.windows(2).all(|w| w[0] < w[1]));
            assert!(times.len() >= 10, "jitter {jitter}: only {} attempts", times.len());
        }
        let three_days = attempt_times(3 * DAY, |n| if n % 2 == 0 { 200 } else { -200 });
        assert_eq!(*three_days.last().unwrap(), 3 * DAY);
        assert_eq!(delay_with_jitter(3, DAY, DAY, 0), None);
        assert_eq!(delay_with_jitter(3, DAY + 1, DAY, 0), None);
        assert_eq!(delay_with_jitter(3, DAY - 5_000, DAY, 0), Some(5_000), "shortened to land on it");
        assert_eq!(delay_with_jitter(0, DAY + 1, DAY, 0), None);
    }
}
