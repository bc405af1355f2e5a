//! HTTP dates (RFC 9110 §5.6.7) and the access log's timestamp, on plain Unix seconds.
//!
//! Everything goes through one pair of calendar conversions (days since the epoch ⇄
//! proleptic Gregorian year/month/day, after Howard Hinnant's algorithms), so the
//! formatters cannot panic: a time outside years 0000–9999 is clamped into that range
//! rather than rejected, which is what a file with a bogus mtime deserves.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range four-digit years can show.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

/// The broken-down UTC time of a Unix timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
}

impl Civil {
    /// Converts `secs` (clamped to years 0000–9999) to calendar fields.
    pub fn from_unix(secs: i64) -> Civil {
        let secs = secs.clamp(MIN_SECS, MAX_SECS);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            // `rem` is in 0..86400, so each field fits and the casts cannot truncate.
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    fn month_name(&self) -> &'static str {
        MONTHS[(self.month.clamp(1, 12) - 1) as usize]
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate, always 29 bytes).
pub fn format_http_date(secs: i64) -> String {
    let c = Civil::from_unix(secs);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday as usize % 7],
        c.day,
        c.month_name(),
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// `2026-12-07T16:06:58Z` (RFC 3339, UTC), as directory listings show dates.
pub fn format_iso_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let t = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// `10/Oct/2000:13:55:36 +0000`, the Common Log Format's time (always UTC here, so a
/// chrooted process needs no zoneinfo).
pub fn format_clf_date(secs: i64) -> String {
    let c = Civil::from_unix(secs);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        c.day,
        c.month_name(),
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Parses the three date forms a recipient must accept (RFC 9110 §5.6.7): IMF-fixdate,
/// RFC 850 and asctime. `None` for anything else, which callers treat as "no date".
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim_matches(|c| c == ' ' || c == '\t');
    if !s.is_ascii() {
        return None;
    }
    parse_imf(s)
        .or_else(|| parse_rfc850(s))
        .or_else(|| parse_asctime(s))
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 4 {
        return None;
    }
    s.parse().ok()
}

fn month_from(s: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == s)
        .and_then(|i| u32::try_from(i + 1).ok())
}

fn hms(s: &str) -> Option<(u32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((num(&s[0..2])?, num(&s[3..5])?, num(&s[6..8])?))
}

fn assemble(year: i64, month: u32, day: u32, (h, m, sec): (u32, u32, u32)) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf(s: &str) -> Option<i64> {
    if s.len() != 29 || !DAYS.contains(&s.get(0..3)?) || s.get(3..5)? != ", " {
        return None;
    }
    let parts: Vec<&str> = s[5..].split(' ').collect();
    if parts.len() != 5 || parts[4] != "GMT" || parts[0].len() != 2 || parts[2].len() != 4 {
        return None;
    }
    assemble(
        i64::from(num(parts[2])?),
        month_from(parts[1])?,
        num(parts[0])?,
        hms(parts[3])?,
    )
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn parse_rfc850(s: &str) -> Option<i64> {
    let (day_name, rest) = s.split_once(", ")?;
    if !LONG_DAYS.contains(&day_name) {
        return None;
    }
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() != 3 || parts[2] != "GMT" {
        return None;
    }
    let date: Vec<&str> = parts[0].split('-').collect();
    if date.len() != 3 || date[0].len() != 2 || date[2].len() != 2 {
        return None;
    }
    let yy = i64::from(num(date[2])?);
    // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    assemble(year, month_from(date[1])?, num(date[0])?, hms(parts[1])?)
}

/// `Sun Nov  6 08:49:37 1994`
fn parse_asctime(s: &str) -> Option<i64> {
    if s.len() != 24 || !DAYS.contains(&s.get(0..3)?) || s.as_bytes()[3] != b' ' {
        return None;
    }
    let month = month_from(s.get(4..7)?)?;
    let day = num(s.get(8..10)?.trim_start())?;
    let time = hms(s.get(11..19)?)?;
    if s.as_bytes()[7] != b' ' || s.as_bytes()[10] != b' ' || s.as_bytes()[19] != b' ' {
        return None;
    }
    assemble(i64::from(num(s.get(20..24)?)?), month, day, time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            format_http_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(format_clf_date(971_185_336), "10/Oct/2000:13:42:16 +0000");
    }

    #[test]
    fn clamps_instead_of_panicking() {
        assert_eq!(format_http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(format_http_date(i64::MIN), "Sat, 01 Jan 0000 00:00:00 GMT");
        assert_eq!(format_http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
    }

    #[test]
    fn parses_the_three_forms() {
        let t = Some(784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), t);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), t);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), t);
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTé",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips_every_day_for_a_few_centuries() {
        let mut secs = -3_000_000_000i64;
        while secs < 8_000_000_000 {
            let text = format_http_date(secs);
            assert_eq!(parse_http_date(&text), Some(secs), "{text}");
            secs += 86_400 + 3_661;
        }
    }
}
