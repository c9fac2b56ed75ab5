//! UTC timestamps for log lines (RFC 3339, milliseconds), through `humantime`.

use std::time::SystemTime;

/// Now, as `2026-01-31T12:34:56.789Z`.
pub fn utc_now() -> String {
    format_utc(SystemTime::now())
}

/// `t` as RFC 3339 UTC with milliseconds.
fn format_utc(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn known_dates() {
        assert_eq!(format_utc(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(
            format_utc(at(1_798_288_323, 999)),
            "2026-12-26T12:32:03.999Z"
        );
    }
}
