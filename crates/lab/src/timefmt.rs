//! UTC timestamps for log lines (RFC 3339, milliseconds), through `humantime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, as `2026-01-31T12:34:56.789Z`.
pub fn utc_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(d.as_secs(), d.subsec_millis())
}

/// Seconds since the epoch (and milliseconds) as RFC 3339 UTC.
pub fn format_utc(secs: u64, millis: u32) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis.into());
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(format_utc(1_798_288_323, 999), "2026-12-26T12:32:03.999Z");
    }
}
