//! Times at the edge: RFC 3339 strings in and out (UTC out); the engine counts
//! milliseconds since the Unix epoch.

use crate::error::AppError;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses an RFC 3339 time (any offset; converted to UTC) into epoch milliseconds.
/// Times before 1970 are refused: the engine's clock starts there.
pub(crate) fn parse(field: &str, text: &str) -> Result<u64, AppError> {
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        AppError::field(
            field,
            format!("{field} must be an RFC 3339 time such as 2030-05-01T20:00:00Z"),
        )
    })?;
    let millis = time.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(millis)
        .map_err(|_| AppError::field(field, format!("{field} must not be before 1970")))
}

/// Formats epoch milliseconds as RFC 3339 in UTC (`2030-05-01T20:00:00Z`, with a
/// fraction only when there is one).
pub(crate) fn format(millis: u64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_offsets() {
        assert_eq!(parse("t", "1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(
            parse("t", "2030-05-01T22:00:00+02:00").unwrap(),
            parse("t", "2030-05-01T20:00:00Z").unwrap()
        );
        let millis = parse("t", "2030-05-01T20:00:00.250Z").unwrap();
        assert_eq!(format(millis), "2030-05-01T20:00:00.25Z");
        assert_eq!(
            format(parse("t", "2030-05-01T20:00:00Z").unwrap()),
            "2030-05-01T20:00:00Z"
        );
        for bad in [
            "",
            "2030-05-01",
            "yesterday",
            "1969-12-31T23:59:59Z",
            "2030-05-01T20:00:00",
        ] {
            let error = parse("starts_at", bad).unwrap_err();
            assert_eq!(error.code, "bad_request", "{bad}");
            assert_eq!(error.details.unwrap()["field"], "starts_at");
        }
    }
}
