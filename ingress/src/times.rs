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
/// fraction only when there is one, its trailing zeros trimmed), as the `time` crate's
/// `Rfc3339` does; past year 9999, which RFC 3339 cannot write, `9999-12-31T23:59:59Z`.
///
/// Written out here, not through `time`'s formatter: every hold and booking answer
/// formats two or three of these, and the general formatter (a description walked per
/// call, an `OffsetDateTime` built first) took several times as long.
pub(crate) fn format(millis: u64) -> String {
    let mut text = [0u8; RFC3339_BYTES_MAX];
    write(millis, &mut text).to_string()
}

/// The longest text [`format`] writes (`2030-05-01T20:00:00.123Z`).
const RFC3339_BYTES_MAX: usize = 24;

/// [`format`]'s text, written into `text` (or the fallback past year 9999).
fn write(millis: u64, text: &mut [u8; RFC3339_BYTES_MAX]) -> &str {
    let seconds = millis / 1000;
    let (year, month, day) = civil_from_days(seconds / 86_400);
    if year > 9999 {
        return "9999-12-31T23:59:59Z";
    }
    let second_of_day = seconds % 86_400;
    let mut put = |at: usize, value: u64, digits: usize| {
        let mut value = value;
        for place in (at..at + digits).rev() {
            text[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, second_of_day / 3600, 2);
    put(14, second_of_day / 60 % 60, 2);
    put(17, second_of_day % 60, 2);
    put(20, millis % 1000, 3);
    for (place, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        text[place] = separator;
    }
    // The fraction without its trailing zeros, and without its point when it is zero.
    let mut end = 23;
    while end > 20 && text[end - 1] == b'0' {
        end -= 1;
    }
    if end == 20 {
        end = 19;
    }
    text[end] = b'Z';
    std::str::from_utf8(&text[..=end]).expect("ASCII digits and separators")
}

/// A time an answer shows: epoch milliseconds, serialized as [`format`]'s text, written
/// on the stack as the answer is serialized (no `String` per time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rfc3339Time(pub(crate) u64);

impl serde::Serialize for Rfc3339Time {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; RFC3339_BYTES_MAX];
        serializer.serialize_str(write(self.0, &mut text))
    }
}

/// The civil date (year, month, day) of a count of days since 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`, for days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `format` wrote before it was written out: the `time` crate's RFC 3339.
    fn format_with_time(millis: u64) -> String {
        let nanos = i128::from(millis) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|time| time.format(&Rfc3339).ok())
            .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
    }

    #[test]
    fn formats_as_the_time_crate_s_rfc_3339_does() {
        // The end of year 9999, in milliseconds.
        let last = 253_402_300_799_999u64;
        let mut cases = vec![
            0,
            1,
            10,
            100,
            999,
            1_000,
            86_399_999,
            86_400_000,
            951_782_400_000,   // 2000-02-29
            4_107_456_000_000, // 2100-02-28
            4_107_542_400_000, // 2100-03-01
            last - 1,
            last,
            last + 1,
            u64::MAX,
        ];
        // Every day's midnight and a moment in it up to 2400 (leap years, centuries, a
        // 400-year cycle), every 97th day from there to past 9999, and seeded moments
        // anywhere.
        let mut day = 0u64;
        while day * 86_400_000 <= last + 86_400_000 * 800 {
            cases.push(day * 86_400_000);
            cases.push(day * 86_400_000 + (day * 7_919) % 86_400_000);
            day += if day < 157_000 { 1 } else { 97 };
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            cases.push(state % (last + 10_000_000_000));
        }
        for millis in cases {
            let expected = format_with_time(millis);
            assert_eq!(format(millis), expected, "{millis}");
            // An answer's time serializes as the same text.
            assert_eq!(
                serde_json::to_string(&Rfc3339Time(millis)).expect("serializes"),
                format!("\"{expected}\""),
                "{millis}"
            );
        }
    }

    /// Answers from several shards are merged by their times (`GET /v1/bookings`): by
    /// the instant, where the texts would put `...:01.5Z` before `...:01Z` (`.` sorts
    /// before `Z`), as the merge by text did.
    #[test]
    fn times_order_as_their_instants_where_their_texts_do_not() {
        let (whole, half_past) = (Rfc3339Time(1_000), Rfc3339Time(1_500));
        assert!(format(1_500) < format(1_000), "the texts' order");
        assert!(whole < half_past);
        let mut merged = vec![half_past, whole, Rfc3339Time(999)];
        merged.sort_unstable();
        assert_eq!(merged, [Rfc3339Time(999), whole, half_past]);
    }

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
