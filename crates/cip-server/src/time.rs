//! Time at the boundary: the store keeps Unix microseconds; the API speaks RFC 3339.

use jiff::Timestamp;

pub fn now_micros() -> i64 {
    Timestamp::now().as_microsecond()
}

pub fn to_rfc3339(micros: i64) -> String {
    Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| micros.to_string())
}

/// Parses an RFC 3339 timestamp with an offset ("2026-01-02T03:04:05Z").
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    s.parse::<Timestamp>()
        .map(|t| t.as_microsecond())
        .map_err(|_| {
            "must be an RFC 3339 timestamp with an offset, e.g. 2026-01-02T03:04:05Z".to_string()
        })
}

pub fn today_utc() -> jiff::civil::Date {
    Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
}
