//! Instants as integer milliseconds since the Unix epoch, and their ISO 8601 form.
//!
//! The API writes dates as `2020-12-15T13:49:36.556Z` (UTC, milliseconds). Storage keeps the
//! integer. Civil-date arithmetic follows Howard Hinnant's `days_from_civil` algorithms.

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    pub fn plus_millis(self, ms: u64) -> Self {
        Millis(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    pub fn plus_seconds(self, s: i64) -> Self {
        Millis(self.0.saturating_add(s.saturating_mul(1000)))
    }

    /// The UTC calendar date (year, month, day).
    pub fn date(self) -> (i64, u32, u32) {
        civil_from_days(self.0.div_euclid(86_400_000))
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn to_iso8601(self) -> String {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let Some(year) = u64::try_from(y).ok().filter(|y| *y <= 9999) else {
            return format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, (sod % 3600) / 60, sod % 60);
        };
        let (sod, ms) = (sod.unsigned_abs(), ms.unsigned_abs());
        // Every status response writes several of these: digits are pushed directly, without
        // the formatting machinery (a few percent of a Get Payment Status' CPU).
        let mut out = String::with_capacity(24);
        let fields = [
            (year, 4, '-'),
            (u64::from(m), 2, '-'),
            (u64::from(d), 2, 'T'),
            (sod / 3600, 2, ':'),
            ((sod % 3600) / 60, 2, ':'),
            (sod % 60, 2, '.'),
            (ms, 3, 'Z'),
        ];
        for (value, width, then) in fields {
            crate::money::push_digits(&mut out, value, width);
            out.push(then);
        }
        out
    }
}

/// Where the current time comes from. Production reads the system clock; tests hold a
/// [`ManualClock`] and move it, so expiry, lockouts and retry schedules are tested without sleeps.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        Millis::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(start: Millis) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(start.0))
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set(&self, t: Millis) {
        self.0.store(t.0, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        Millis(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses a calendar date `YYYY-MM-DD`, checking that the day exists.
pub fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let len = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (d <= len).then_some((i64::from(y), m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_instants_as_utc_with_milliseconds() {
        assert_eq!(Millis(0).to_iso8601(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Millis(1_608_040_176_556).to_iso8601(), "2020-12-15T13:49:36.556Z");
        assert_eq!(Millis(951_782_400_000).to_iso8601(), "2000-02-29T00:00:00.000Z");
        assert_eq!(Millis(253_402_300_799_999).to_iso8601(), "9999-12-31T23:59:59.999Z");
        assert_eq!(Millis(253_402_300_800_000).to_iso8601(), "10000-01-01T00:00:00.000Z");
        assert_eq!(Millis(-1).to_iso8601(), "1969-12-31T23:59:59.999Z");
        assert_eq!(Millis(-62_167_219_200_001).to_iso8601(), "-001-12-31T23:59:59.999Z");
    }

    #[test]
    fn instants_know_their_date() {
        assert_eq!(Millis(1_608_040_176_556).date(), (2020, 12, 15));
        assert_eq!(Millis(-1).date(), (1969, 12, 31));
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Millis(1_000));
        assert_eq!(c.now(), Millis(1_000));
        c.advance_ms(59_999);
        assert_eq!(c.now(), Millis(60_999));
        c.set(Millis(5));
        assert_eq!(c.now(), Millis(5));
    }

    #[test]
    fn civil_dates_round_trip() {
        for z in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn dates_must_exist() {
        assert_eq!(parse_date("1980-10-19"), Some((1980, 10, 19)));
        assert_eq!(parse_date("2000-02-29"), Some((2000, 2, 29)));
        for bad in ["1900-02-29", "2023-13-01", "2023-04-31", "2023-4-01", "20230401", "2023-04-0a", "2023-00-10"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
