//! The log record format: one version byte, then the request in bincode (standard
//! configuration). Changing the format is deliberate: bump `VERSION`, keep decoding
//! the old one, and update the golden bytes in the tests.

use crate::command::Request;
use crate::outcome::Outcome;

pub const VERSION: u8 = 1;
/// The largest record the engine will decode; the ingress never writes a larger one.
pub const RECORD_BYTES_MAX: usize = 256 * 1024;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<RECORD_BYTES_MAX>,
> {
    bincode::config::standard().with_limit::<RECORD_BYTES_MAX>()
}

pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut bytes = vec![VERSION];
    bincode::serde::encode_into_std_write(request, &mut bytes, config())
        .expect("encoding into a Vec cannot fail");
    bytes
}

/// Decodes a record. The error is a sentence that becomes the `Undecodable` reason.
pub fn decode_request(bytes: &[u8]) -> Result<Request, String> {
    let (&version, body) = bytes.split_first().ok_or("empty record")?;
    if version != VERSION {
        return Err(format!("unknown record version {version}"));
    }
    if body.len() > RECORD_BYTES_MAX {
        return Err(format!(
            "record of {} bytes is over the {RECORD_BYTES_MAX}-byte limit",
            body.len()
        ));
    }
    let (request, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|error| format!("undecodable record: {error}"))?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the record",
            body.len() - used
        ));
    }
    Ok(request)
}

/// Outcomes travel the same way (the outcomes topic, the snapshot of unpublished ones).
pub fn encode_outcome(outcome: &Outcome) -> Vec<u8> {
    let mut bytes = vec![VERSION];
    bincode::serde::encode_into_std_write(outcome, &mut bytes, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    bytes
}

pub fn decode_outcome(bytes: &[u8]) -> Result<Outcome, String> {
    let (&version, body) = bytes.split_first().ok_or("empty outcome record")?;
    if version != VERSION {
        return Err(format!("unknown outcome version {version}"));
    }
    bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map(|(outcome, _)| outcome)
        .map_err(|error| format!("undecodable outcome: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Selection};
    use crate::ids::EventId;

    #[test]
    fn golden_bytes_of_a_hold_request() {
        let request = Request::with_key(
            Command::PlaceHold {
                user: "u1".into(),
                event: EventId(3),
                selection: Selection::Seats(vec!["A-1-7".into()]),
                wait: false,
            },
            "k",
        );
        let bytes = encode_request(&request);
        // Version 1; Some("k"); variant 4 (PlaceHold); "u1"; event 3; Seats(["A-1-7"]); wait false.
        assert_eq!(
            bytes,
            [1, 1, 1, b'k', 4, 2, b'u', b'1', 3, 0, 1, 5, b'A', b'-', b'1', b'-', b'7', 0]
        );
        assert_eq!(decode_request(&bytes), Ok(request));
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        assert!(decode_request(&[]).is_err());
        assert!(decode_request(&[9, 0]).unwrap_err().contains("version"));
        assert!(decode_request(&[1, 0, 200]).is_err());
        let mut bytes = encode_request(&Request::new(Command::Tick));
        bytes.push(0);
        assert!(decode_request(&bytes).unwrap_err().contains("trailing"));
        // A length prefix claiming far more than the record holds.
        assert!(decode_request(&[1, 1, 0xfc, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
