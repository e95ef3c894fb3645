//! The log record formats.
//!
//! **Requests** (the requests log): one version byte ([`VERSION`]), then the request in
//! bincode (standard configuration), at most [`RECORD_BYTES_MAX`] bytes.
//!
//! **Outcomes** (the outcomes log): an outcome is encoded once, in bincode (standard
//! configuration), and cut into frames of at most [`OUTCOME_FRAME_BYTES_MAX`] bytes, one
//! frame per record, so an outcome of any size fits logs whose records are bounded (the
//! embedded log's payload limit, Kafka's `message.max.bytes`). Every frame starts with a
//! fixed header of [`OUTCOME_FRAME_HEADER_BYTES`] bytes:
//!
//! ```text
//!  byte  0       version (OUTCOME_VERSION = 4)
//!  bytes 1..9    the request offset the outcome answers, u64 little-endian
//!  bytes 9..13   this frame's index, u32 little-endian (0 first)
//!  bytes 13..17  the outcome's frame count, u32 little-endian (at least 1)
//!  bytes 17..    this frame's share of the outcome's bincode bytes
//! ```
//!
//! Readers reassemble with an [`OutcomeAssembler`]: a frame with index 0 starts a copy of
//! an outcome (a publisher that stopped in the middle of one publishes it again from frame
//! 0; two publishers writing at once interleave their copies), a frame continues the copies
//! of its request offset, the first copy to complete is the outcome, and a frame that
//! continues nothing is ignored. [`frame_header`]
//! reads the header alone, for tools that only need the offset.
//!
//! Changing a format is deliberate: bump the version and update the golden bytes in the
//! tests. Outcome records of version 1 (one whole outcome per record), 2 (framed, with
//! ticket lists and codes in confirmations) and 3 (without `effects_before_reply`) are
//! refused rather than decoded: the `Outcome` type has changed since, and outcomes are a
//! pure function of
//! the requests log, so an old outcomes log is re-derived by replaying the requests log
//! from offset 0 (remove the outcomes log and the snapshots, then start the engine).

use crate::command::Request;
use crate::outcome::Outcome;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The requests log's record version. Version 2: a user command's user is a
/// [`crate::UserRef`] (a name, or the id the engine gave that name). Version 1 (every user
/// a name) still decodes, to the same requests by name, so old logs replay to the same
/// decisions. A binary that reads version 1 only stops at the first version-2 record
/// with an `Undecodable` rejection: upgrade the engines before the ingresses.
pub const VERSION: u8 = 2;
/// The requests log's first record version: users by name ([`crate::NamedRequest`]).
pub const VERSION_NAMED: u8 = 1;
/// The largest record the engine will decode; the ingress never writes a larger one.
pub const RECORD_BYTES_MAX: usize = 256 * 1024;

/// The outcomes log's record version: every record is one frame of an outcome.
/// Version 3: a confirmation carries no ticket list and no codes (both follow from the
/// booking's id and items; the read side derives them, codes with its secret). Version 4:
/// an outcome says how many of its effects came before its reply
/// (`Outcome::effects_before_reply`), so a read model applies it in the engine's order.
pub const OUTCOME_VERSION: u8 = 4;
/// Version byte, request offset (u64), frame index (u32), frame count (u32).
pub const OUTCOME_FRAME_HEADER_BYTES: usize = 1 + 8 + 4 + 4;
/// The largest outcome record, header included.
pub const OUTCOME_FRAME_BYTES_MAX: usize = 256 * 1024;
/// The largest share of an outcome one frame carries.
pub const OUTCOME_FRAME_BODY_BYTES_MAX: usize =
    OUTCOME_FRAME_BYTES_MAX - OUTCOME_FRAME_HEADER_BYTES;
/// The smallest record limit of the logs that carry outcomes, by default: Kafka's
/// producer `message.max.bytes` (1,000,000 bytes; the broker's is 1,048,588); the embedded
/// log's default payload limit is 1 MiB.
pub const LOG_RECORD_BYTES_DEFAULT_MIN: usize = 1_000_000;

// A frame fits any log at its default limits with room to spare (Kafka's record-batch
// framing, a log configured tighter than its default).
const _: () = assert!(OUTCOME_FRAME_BYTES_MAX * 2 <= LOG_RECORD_BYTES_DEFAULT_MIN);
const _: () = assert!(OUTCOME_FRAME_BODY_BYTES_MAX >= 64 * 1024);

/// The first capacity of an encoded record ([`encode_versioned`]).
const RECORD_CAPACITY_BYTES: usize = 128;

/// Encodes `value` in one of the logs' versioned record formats: the `version` byte, then
/// bincode (varint, little-endian) of at most `LIMIT` bytes. The requests log's records
/// ([`encode_request`]) and the control log's (`control::encode_control`) share it.
pub(crate) fn encode_versioned<T: serde::Serialize, const LIMIT: usize>(
    version: u8,
    value: &T,
) -> Vec<u8> {
    // Perf: room for a usual record (a hold or a confirm with a new user's pseudonym:
    // 40-100 bytes), which grew from one byte through four reallocations on the HTTP
    // thread (1% of its samples under hold + confirm, BENCHMARKS.md "Session 49").
    let mut bytes = Vec::with_capacity(RECORD_CAPACITY_BYTES);
    bytes.push(version);
    bincode::serde::encode_into_std_write(
        value,
        &mut bytes,
        bincode::config::standard().with_limit::<LIMIT>(),
    )
    .expect("encoding into a Vec cannot fail");
    bytes
}

/// Decodes a record of [`encode_versioned`]'s form, or says why not in a sentence naming
/// `what` (`record`, `control record`). The requests log's sentences become `Undecodable`
/// outcomes, so their words are part of the outcomes' bytes: they do not change.
pub(crate) fn decode_versioned<T: serde::de::DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
    version: u8,
    what: &str,
) -> Result<T, String> {
    let (&found, body) = bytes.split_first().ok_or_else(|| format!("empty {what}"))?;
    if found != version {
        return Err(format!("unknown {what} version {found}"));
    }
    if body.len() > LIMIT {
        return Err(format!(
            "{what} of {} bytes is over the {LIMIT}-byte limit",
            body.len()
        ));
    }
    let (value, used) =
        bincode::serde::decode_from_slice(body, bincode::config::standard().with_limit::<LIMIT>())
            .map_err(|error| format!("undecodable {what}: {error}"))?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the {what}",
            body.len() - used
        ));
    }
    Ok(value)
}

pub fn encode_request(request: &Request) -> Vec<u8> {
    encode_versioned::<_, RECORD_BYTES_MAX>(VERSION, request)
}

/// Decodes a record of either version. The error is a sentence that becomes the
/// `Undecodable` reason.
pub fn decode_request(bytes: &[u8]) -> Result<Request, String> {
    if bytes.first() == Some(&VERSION_NAMED) {
        let named: crate::NamedRequest =
            decode_versioned::<_, RECORD_BYTES_MAX>(bytes, VERSION_NAMED, "record")?;
        return Ok(named.into_request());
    }
    decode_versioned::<_, RECORD_BYTES_MAX>(bytes, VERSION, "record")
}

/// An outcome's bincode bytes, unframed: what its frames carry, and what tests digest.
/// Never append these to the outcomes log: use [`encode_outcome_frames`].
pub fn encode_outcome_body(outcome: &Outcome) -> Vec<u8> {
    let mut bytes = Vec::new();
    bincode::serde::encode_into_std_write(outcome, &mut bytes, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    bytes
}

/// The outcome as outcomes-log records: one frame when it is at most
/// [`OUTCOME_FRAME_BODY_BYTES_MAX`] bytes (nearly always), else as many as it takes, each
/// at most [`OUTCOME_FRAME_BYTES_MAX`] bytes. Append them in order.
/// The first frame's initial capacity ([`encode_outcome_frames`]).
const OUTCOME_FIRST_FRAME_CAPACITY_BYTES: usize = 512;

pub fn encode_outcome_frames(outcome: &Outcome) -> Vec<Vec<u8>> {
    // Encoded after room for the header, so the usual single frame is never copied; with
    // room for a usual outcome (a hold or a booking: 100-300 bytes), which grew from the
    // header's 17 bytes through four reallocations.
    let mut first = Vec::with_capacity(OUTCOME_FIRST_FRAME_CAPACITY_BYTES);
    first.resize(OUTCOME_FRAME_HEADER_BYTES, 0);
    bincode::serde::encode_into_std_write(outcome, &mut first, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    let body_bytes = first.len() - OUTCOME_FRAME_HEADER_BYTES;
    if body_bytes <= OUTCOME_FRAME_BODY_BYTES_MAX {
        write_frame_header(&mut first, outcome.offset, 0, 1);
        return vec![first];
    }
    let body = &first[OUTCOME_FRAME_HEADER_BYTES..];
    let count = u32::try_from(body_bytes.div_ceil(OUTCOME_FRAME_BODY_BYTES_MAX))
        .expect("an outcome is far smaller than 2^32 frames");
    let frames: Vec<Vec<u8>> = body
        .chunks(OUTCOME_FRAME_BODY_BYTES_MAX)
        .zip(0..)
        .map(|(chunk, index)| {
            let mut frame = vec![0; OUTCOME_FRAME_HEADER_BYTES];
            write_frame_header(&mut frame, outcome.offset, index, count);
            frame.extend_from_slice(chunk);
            frame
        })
        .collect();
    debug_assert_eq!(frames.len(), count as usize);
    debug_assert!(frames
        .iter()
        .all(|frame| frame.len() <= OUTCOME_FRAME_BYTES_MAX));
    frames
}

fn write_frame_header(frame: &mut [u8], offset: u64, index: u32, count: u32) {
    assert!(index < count);
    frame[0] = OUTCOME_VERSION;
    frame[1..9].copy_from_slice(&offset.to_le_bytes());
    frame[9..13].copy_from_slice(&index.to_le_bytes());
    frame[13..17].copy_from_slice(&count.to_le_bytes());
}

/// What an outcome frame's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The request offset the outcome answers.
    pub offset: u64,
    pub index: u32,
    pub count: u32,
}

impl FrameHeader {
    /// The frame that completes its outcome.
    pub fn is_last(&self) -> bool {
        self.index + 1 == self.count
    }
}

/// The sentence for an outcome record of version 1.
const VERSION_1_REFUSED: &str = "outcome record version 1 (one record per outcome) is no longer read: outcomes are now framed (version 4); outcomes are a pure function of the requests log, so remove the outcomes log and the snapshots and start the engine to re-derive them by replay";
/// The sentence for an outcome record of version 2.
const VERSION_2_REFUSED: &str = "outcome record version 2 (ticket lists and codes in confirmations) is no longer read: outcomes are now version 4; outcomes are a pure function of the requests log, so remove the outcomes log and the snapshots (and each ingress's data directory, whose read model and idempotency index are derived from the outcomes) and start the engine to re-derive them by replay";
/// The sentence for an outcome record of version 3.
const VERSION_3_REFUSED: &str = "outcome record version 3 (effects without the count of those before the reply) is no longer read: outcomes are now version 4; outcomes are a pure function of the requests log, so remove the outcomes log and the snapshots (and each ingress's data directory, whose read model and idempotency index are derived from the outcomes) and start the engine to re-derive them by replay";

/// Reads a frame's header without touching its body. The error is a sentence.
pub fn frame_header(record: &[u8]) -> Result<FrameHeader, String> {
    match record.first() {
        None => return Err("empty outcome record".into()),
        Some(1) => return Err(VERSION_1_REFUSED.into()),
        Some(2) => return Err(VERSION_2_REFUSED.into()),
        Some(3) => return Err(VERSION_3_REFUSED.into()),
        Some(&OUTCOME_VERSION) => {}
        Some(version) => return Err(format!("unknown outcome record version {version}")),
    }
    if record.len() < OUTCOME_FRAME_HEADER_BYTES {
        return Err(format!(
            "outcome record of {} bytes is shorter than the {OUTCOME_FRAME_HEADER_BYTES}-byte frame header",
            record.len()
        ));
    }
    if record.len() > OUTCOME_FRAME_BYTES_MAX {
        return Err(format!(
            "outcome frame of {} bytes is over the {OUTCOME_FRAME_BYTES_MAX}-byte limit",
            record.len()
        ));
    }
    let field = |range: std::ops::Range<usize>| &record[range];
    let header = FrameHeader {
        offset: u64::from_le_bytes(field(1..9).try_into().expect("8 bytes")),
        index: u32::from_le_bytes(field(9..13).try_into().expect("4 bytes")),
        count: u32::from_le_bytes(field(13..17).try_into().expect("4 bytes")),
    };
    if header.index >= header.count {
        return Err(format!(
            "outcome frame {} of {} (of request {}): the index is not below the count",
            header.index, header.count, header.offset
        ));
    }
    Ok(header)
}

/// Decodes a whole outcome's bincode bytes; `offset` is what its frames said.
fn decode_outcome_body(offset: u64, body: &[u8]) -> Result<Outcome, String> {
    let (outcome, used): (Outcome, usize) =
        bincode::serde::decode_from_slice(body, bincode::config::standard())
            .map_err(|error| format!("undecodable outcome of request {offset}: {error}"))?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the outcome of request {offset}",
            body.len() - used
        ));
    }
    if outcome.offset != offset {
        return Err(format!(
            "the frames say request {offset} but the outcome answers request {}",
            outcome.offset
        ));
    }
    Ok(outcome)
}

/// Reassembles outcomes from frames read in log order (sans-io: push records, take
/// outcomes). Rules:
/// - a frame with index 0 starts a copy of an outcome (a publisher that stopped in the
///   middle of an outcome publishes it again from frame 0);
/// - a frame continues the copy of its request offset with the same count whose next
///   index it is; it is ignored when it continues none; two copies that reach the same
///   frame are one from then on (the newer is dropped);
/// - the first copy to complete is the outcome; the other copies of it, and any copy of
///   an earlier request offset, are dropped with it (outcomes complete in request order,
///   below, so those are copies of outcomes already made);
/// - why copies: two publishers may write at the same time (an old primary that has not
///   yet read the `Promote` that replaced it, and the new one), their frames interleaved,
///   one of them perhaps stopping inside an outcome. Their outcomes are byte for byte the
///   same (a pure function of the requests log), so a frame of either continues a copy of
///   the other; and since every publisher's own copy completes by its last frame,
///   outcomes complete in request order whatever the interleaving;
/// - at most [`OUTCOME_COPIES_MAX`] copies are assembled at once; past it the oldest
///   unfinished one is dropped;
/// - frames that end up in no outcome are counted ([`OutcomeAssembler::frames_ignored`]).
///
/// A copy holds at most the bytes of one outcome, which the engine held in memory to
/// produce it.
#[derive(Debug, Default)]
pub struct OutcomeAssembler {
    /// Unfinished copies, oldest first.
    copies: Vec<OutcomeCopy>,
    frames_ignored: u64,
    dropped_last: Option<u64>,
    /// Where a reader of the log resumes ([`OutcomeAssembler::push_at`]).
    resume_position: Option<u64>,
}

/// How many unfinished outcome copies an [`OutcomeAssembler`] keeps (a few publishers
/// writing at once, and copies cut short).
pub const OUTCOME_COPIES_MAX: usize = 8;

#[derive(Debug)]
struct OutcomeCopy {
    offset: u64,
    count: u32,
    next_index: u32,
    body: Vec<u8>,
}

impl OutcomeAssembler {
    pub fn new() -> OutcomeAssembler {
        OutcomeAssembler::default()
    }

    /// Takes the next record of the outcomes log: `Some` when it completes an outcome.
    /// An error (a sentence) is a record that is not a frame, or frames that do not decode
    /// to an outcome; the assembler stays usable.
    pub fn push(&mut self, record: &[u8]) -> Result<Option<Outcome>, String> {
        let header = frame_header(record)?;
        let body = &record[OUTCOME_FRAME_HEADER_BYTES..];
        if header.index == 0 {
            if header.count == 1 {
                self.drop_copies_through(header.offset);
                return decode_outcome_body(header.offset, body).map(Some);
            }
            if self.copies.len() == OUTCOME_COPIES_MAX {
                self.drop_copy(0);
            }
            self.copies.push(OutcomeCopy {
                offset: header.offset,
                count: header.count,
                next_index: 1,
                body: body.to_vec(),
            });
            self.merge(self.copies.len() - 1);
            return Ok(None);
        }
        // At most one copy is in any one state (`merge`).
        let Some(at) = self.copies.iter().position(|copy| {
            (copy.offset, copy.count, copy.next_index)
                == (header.offset, header.count, header.index)
        }) else {
            self.frames_ignored += 1;
            return Ok(None);
        };
        let copy = &mut self.copies[at];
        copy.body.extend_from_slice(body);
        copy.next_index += 1;
        if copy.next_index < copy.count {
            self.merge(at);
            return Ok(None);
        }
        let copy = self.copies.remove(at);
        self.drop_copies_through(copy.offset);
        decode_outcome_body(copy.offset, &copy.body).map(Some)
    }

    /// Copy `at` has just moved: if another copy is now at the same frame of the same
    /// outcome, the two hold the same bytes (a publisher's repeat of its frames, from frame
    /// 0 again or from a second publisher); the newer goes, its frames counted as ignored.
    fn merge(&mut self, at: usize) {
        let state = |copy: &OutcomeCopy| (copy.offset, copy.count, copy.next_index);
        let moved = state(&self.copies[at]);
        if let Some(twin) =
            (0..self.copies.len()).find(|&other| other != at && state(&self.copies[other]) == moved)
        {
            self.drop_copy(at.max(twin));
        }
    }

    /// [`OutcomeAssembler::push`] of the log's record at `position`, keeping where a
    /// reader that stops here resumes: after the last record that completed an outcome
    /// with no other copy unfinished ([`OutcomeAssembler::resume_position`]). Resuming
    /// inside a copy would lose its first frames: an outcome that no one publishes again.
    pub fn push_at(&mut self, position: u64, record: &[u8]) -> Result<Option<Outcome>, String> {
        let pushed = self.push(record);
        if matches!(pushed, Ok(Some(_))) && self.copies.is_empty() {
            self.resume_position = Some(position + 1);
        }
        pushed
    }

    /// [`OutcomeAssembler::push_at`], taking a one-frame outcome from `known` instead of
    /// decoding it when `known` holds its request offset: a reader in the process whose
    /// publisher appended it (the outcome is that publisher's, the one it encoded, which a
    /// decode gives back: checked in debug builds). Outcomes are a pure function of the
    /// requests log, so the outcome a request offset has is the same in every copy.
    pub fn push_at_known(
        &mut self,
        position: u64,
        record: &[u8],
        known: Option<&RecentOutcomes>,
    ) -> Result<Option<Arc<Outcome>>, String> {
        if let Some(known) = known {
            let header = frame_header(record)?;
            if let (0, 1, Some(outcome)) = (header.index, header.count, known.get(header.offset)) {
                debug_assert_eq!(
                    decode_outcome_body(header.offset, &record[OUTCOME_FRAME_HEADER_BYTES..])
                        .as_ref(),
                    Ok(&**outcome),
                    "a published outcome decodes to itself"
                );
                // What `push` and `push_at` do with a one-frame outcome, but its decode.
                self.drop_copies_through(header.offset);
                if self.copies.is_empty() {
                    self.resume_position = Some(position + 1);
                }
                return Ok(Some(Arc::clone(outcome)));
            }
        }
        Ok(self.push_at(position, record)?.map(Arc::new))
    }

    /// The log position to resume reading from (see [`OutcomeAssembler::push_at`]); `None`
    /// before any.
    pub fn resume_position(&self) -> Option<u64> {
        self.resume_position
    }

    /// Frames that made no outcome: those that continued nothing, and those of outcomes
    /// dropped unfinished.
    pub fn frames_ignored(&self) -> u64 {
        self.frames_ignored
    }

    /// The request offset of the oldest unfinished copy, if any.
    pub fn unfinished_offset(&self) -> Option<u64> {
        self.copies.first().map(|copy| copy.offset)
    }

    /// The request offset of the last unfinished copy dropped (an outcome cut short and
    /// published again, or completed by another copy), if any was.
    pub fn dropped_last(&self) -> Option<u64> {
        self.dropped_last
    }

    /// Drops the copies of outcomes up to `offset`, which has just completed: outcomes
    /// complete in request order, so those are copies of outcomes already made.
    fn drop_copies_through(&mut self, offset: u64) {
        while let Some(at) = self.copies.iter().position(|copy| copy.offset <= offset) {
            self.drop_copy(at);
        }
    }

    fn drop_copy(&mut self, at: usize) {
        let copy = self.copies.remove(at);
        self.frames_ignored += u64::from(copy.next_index);
        self.dropped_last = Some(copy.offset);
    }
}

/// The outcomes a publisher has just appended to its outcomes log, newest last, by request
/// offset: the readers of that log in the same process (`serve`'s outcome follower and
/// effects worker) take them from here instead of decoding what they read
/// ([`OutcomeAssembler::push_at_known`]). Bounded: the oldest go first; a reader further
/// behind decodes, as every reader in another process does.
#[derive(Debug)]
pub struct RecentOutcomes {
    /// Request offsets strictly increasing.
    outcomes: VecDeque<Arc<Outcome>>,
    capacity: usize,
}

/// A publisher's [`RecentOutcomes`], shared with the readers in its process (each locks it
/// once a batch).
pub type SharedRecentOutcomes = Arc<Mutex<RecentOutcomes>>;

/// Locks a publisher's [`SharedRecentOutcomes`]. A holder that panicked left it whole (its
/// one change, [`RecentOutcomes::extend`], keeps it ordered at every step), so it is used.
pub fn lock_recent(recent: &SharedRecentOutcomes) -> std::sync::MutexGuard<'_, RecentOutcomes> {
    recent
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RecentOutcomes {
    pub fn new(capacity: usize) -> RecentOutcomes {
        assert!(capacity > 0);
        RecentOutcomes {
            outcomes: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Keeps outcomes just appended, in request order. One at or below the newest kept is
    /// not kept again (a publisher that publishes an outcome a second time: the same
    /// outcome, since outcomes are a pure function of the requests log).
    pub fn extend(&mut self, outcomes: impl IntoIterator<Item = Arc<Outcome>>) {
        for outcome in outcomes {
            if self
                .outcomes
                .back()
                .is_some_and(|newest| newest.offset >= outcome.offset)
            {
                continue;
            }
            if self.outcomes.len() == self.capacity {
                self.outcomes.pop_front();
            }
            self.outcomes.push_back(outcome);
        }
    }

    /// The kept outcome of the request at `offset`.
    pub fn get(&self, offset: u64) -> Option<&Arc<Outcome>> {
        let oldest = self.outcomes.front()?.offset;
        // Offsets are consecutive but where a publisher skipped some (outcomes the log
        // already had): the place they would have is tried first.
        let guess = usize::try_from(offset.checked_sub(oldest)?).ok()?;
        match self.outcomes.get(guess) {
            Some(outcome) if outcome.offset == offset => Some(outcome),
            _ => self
                .outcomes
                .binary_search_by_key(&offset, |outcome| outcome.offset)
                .ok()
                .map(|at| &self.outcomes[at]),
        }
    }

    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Selection};
    use crate::ids::{EventId, WaiterId};
    use crate::outcome::{Effect, Reply, WaitEnd};

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
        // Version 2; Some("k"); variant 4 (PlaceHold); Name (0) "u1"; event 3;
        // Seats(["A-1-7"]); wait false.
        assert_eq!(
            bytes,
            [2, 1, 1, b'k', 4, 0, 2, b'u', b'1', 3, 0, 1, 5, b'A', b'-', b'1', b'-', b'7', 0]
        );
        assert_eq!(decode_request(&bytes), Ok(request.clone()));
        // Version 1, as every log before ids was written: the same request, by name.
        let version_1 = [
            1, 1, 1, b'k', 4, 2, b'u', b'1', 3, 0, 1, 5, b'A', b'-', b'1', b'-', b'7', 0,
        ];
        assert_eq!(decode_request(&version_1), Ok(request));
    }

    /// A user by id: variant 1 of `UserRef`, the id as a varint.
    #[test]
    fn golden_bytes_of_a_confirm_by_user_id() {
        let request = Request::new(Command::ConfirmHold {
            user: crate::UserRef::Id(300),
            hold: crate::ids::HoldId(7),
            payment_ref: "p".into(),
        });
        let bytes = encode_request(&request);
        // Version 2; None; variant 5 (ConfirmHold); Id (1) 300 (varint 251, u16 LE);
        // hold 7; "p".
        assert_eq!(bytes, [2, 0, 5, 1, 251, 44, 1, 7, 1, b'p']);
        assert_eq!(decode_request(&bytes), Ok(request));
        // Version 1 has no ids: the same bytes there are not a request.
        let mut version_1 = bytes.clone();
        version_1[0] = 1;
        assert!(decode_request(&version_1).is_err());
    }

    /// Categories by index, as the ingress appends them: `Selection::BestIndexed` is
    /// variant 3 of `Selection` and `JoinWaitlistIndexed` variant 22 of `Command`, after
    /// every older one (which decode as before); the index is an optional varint.
    #[test]
    fn golden_bytes_of_categories_by_index() {
        let hold = Request::new(Command::PlaceHold {
            user: crate::UserRef::Id(5),
            event: EventId(3),
            selection: Selection::BestIndexed {
                quantity: 2,
                category: Some(1),
                together: true,
            },
            wait: false,
        });
        let bytes = encode_request(&hold);
        // Version 2; None; variant 4 (PlaceHold); Id (1) 5; event 3; BestIndexed (3)
        // quantity 2, Some (1) category 1, together; wait false.
        assert_eq!(bytes, [2, 0, 4, 1, 5, 3, 3, 2, 1, 1, 1, 0]);
        assert_eq!(decode_request(&bytes), Ok(hold));
        let join = Request::new(Command::JoinWaitlistIndexed {
            user: crate::UserRef::Id(5),
            event: EventId(3),
            quantity: 2,
            category: None,
            together: false,
        });
        let bytes = encode_request(&join);
        // Version 2; None; variant 22; Id (1) 5; event 3; quantity 2; None; not together.
        assert_eq!(bytes, [2, 0, 22, 1, 5, 3, 2, 0, 0]);
        assert_eq!(decode_request(&bytes), Ok(join));
    }

    /// `CreateEventWithTerms` is variant 21, after every older one (which decode as
    /// before); its terms follow the spec and the optional draw.
    #[test]
    fn golden_bytes_of_an_event_with_terms() {
        use crate::command::{CategorySpec, EventSpec, PoolSpec, WaitlistPolicy};
        use crate::terms::{CancellationPolicy, CancellationRefund, EventTerms};
        let request = Request::new(Command::CreateEventWithTerms {
            tenant: "t".into(),
            spec: Box::new(EventSpec {
                name: "n".into(),
                description: String::new(),
                city: "c".into(),
                country: "FR".into(),
                venue: "v".into(),
                starts_at_ms: 5,
                ends_at_ms: None,
                sales_open_at_ms: None,
                sales_close_at_ms: None,
                hold_ttl_ms: 6,
                seats_per_order_max: 2,
                seats_per_user_max: None,
                waitlist_policy: WaitlistPolicy::Strict,
                categories: vec![CategorySpec {
                    name: "s".into(),
                    price_cents: 7,
                }],
                sections: vec![],
                general_admission: vec![PoolSpec {
                    category: "s".into(),
                    capacity: 8,
                }],
            }),
            draw: None,
            terms: Box::new(EventTerms {
                currency: "EUR".into(),
                cancellation: CancellationPolicy {
                    until_hours_before_start: Some(48),
                    refund: CancellationRefund::None,
                },
            }),
        });
        let bytes = encode_request(&request);
        #[rustfmt::skip]
        let expected = [
            2, // version
            0, // no idempotency key
            21, // CreateEventWithTerms
            1, b't',
            1, b'n', 0, 1, b'c', 2, b'F', b'R', 1, b'v', // texts
            5, 0, 0, 0, 6, 2, 0, 0, // times, TTL, limits, Strict
            1, 1, b's', 7, // categories
            0, // sections
            1, 1, b's', 8, // general admission
            0, // no draw
            3, b'E', b'U', b'R', 1, 48, 1, // currency, Some(48) hours, refund None
        ];
        assert_eq!(bytes, expected);
        assert_eq!(decode_request(&bytes), Ok(request.clone()));
        // Version 1 has a user-less command in the same bytes.
        let mut version_1 = expected;
        version_1[0] = 1;
        assert_eq!(decode_request(&version_1), Ok(request));
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

    fn tick_outcome(offset: u64) -> Outcome {
        Outcome {
            offset,
            time_ms: 7,
            replayed: false,
            result: Ok(Reply::Ticked),
            effects: Vec::new(),
            effects_before_reply: 0,
            idempotency: None,
        }
    }

    /// An outcome of about `bytes` bytes: a confirm that ended a long waitlist.
    fn big_outcome(offset: u64, bytes: usize) -> Outcome {
        let effects = (0..bytes as u64 / 24)
            .map(|waiter| Effect::WaitlistEnded {
                waiter: WaiterId(waiter),
                event: EventId(1),
                user: format!("user-{waiter:012}").into(),
                reason: WaitEnd::SoldOut,
            })
            .collect();
        Outcome {
            effects,
            ..tick_outcome(offset)
        }
    }

    fn assemble(assembler: &mut OutcomeAssembler, frames: &[Vec<u8>]) -> Vec<Outcome> {
        frames
            .iter()
            .filter_map(|frame| assembler.push(frame).unwrap())
            .collect()
    }

    #[test]
    fn golden_bytes_of_a_one_frame_outcome() {
        let outcome = tick_outcome(0x0102);
        let frames = encode_outcome_frames(&outcome);
        assert_eq!(frames.len(), 1);
        let (header, body) = frames[0].split_at(OUTCOME_FRAME_HEADER_BYTES);
        // Version 4; request offset 0x0102 (u64 LE); frame 0 (u32 LE); of 1 (u32 LE).
        assert_eq!(
            header,
            [4, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
        );
        // The outcome's bincode (it changes with the `Outcome` type; the header does not):
        // offset 0x0102 (varint 251 + u16 LE); time 7; replayed false; Ok; Reply::Ticked
        // (variant 15); no effects, none before the reply; no idempotency stamp.
        assert_eq!(body, [251, 0x02, 0x01, 7, 0, 0, 15, 0, 0, 0]);
        assert_eq!(body, encode_outcome_body(&outcome));
        assert_eq!(
            frame_header(&frames[0]),
            Ok(FrameHeader {
                offset: 0x0102,
                index: 0,
                count: 1
            })
        );
        assert_eq!(OutcomeAssembler::new().push(&frames[0]), Ok(Some(outcome)));
    }

    /// A reader that knows a publisher's recent outcomes takes them (the same `Arc`) for
    /// one-frame outcomes, decodes what it does not know and what comes in frames, and
    /// resumes from the same positions as a reader that decodes everything.
    #[test]
    fn a_known_outcome_is_taken_not_decoded_and_the_rest_decode_as_before() {
        let mut known = RecentOutcomes::new(3);
        let kept: Vec<Arc<Outcome>> = [5, 6, 8, 9]
            .map(|offset| Arc::new(tick_outcome(offset)))
            .into();
        known.extend(kept.iter().cloned());
        // Capacity 3: 5 went; 6 again (a publisher that published it twice) is not kept twice.
        known.extend([Arc::new(tick_outcome(6))]);
        assert_eq!(known.len(), 3);
        assert!(known.get(5).is_none() && known.get(7).is_none() && known.get(10).is_none());
        for (offset, outcome) in [(6, &kept[1]), (8, &kept[2]), (9, &kept[3])] {
            assert!(Arc::ptr_eq(known.get(offset).unwrap(), outcome), "{offset}");
        }
        let big = big_outcome(7, 1 << 20);
        let mut log = encode_outcome_frames(&tick_outcome(5));
        log.extend(encode_outcome_frames(&tick_outcome(6)));
        log.extend(encode_outcome_frames(&big));
        log.extend(encode_outcome_frames(&tick_outcome(8)));
        log.extend(encode_outcome_frames(&tick_outcome(9)));
        let (mut plain, mut knowing) = (OutcomeAssembler::new(), OutcomeAssembler::new());
        let mut taken = Vec::new();
        for (position, record) in (100..).zip(&log) {
            let decoded = plain.push_at(position, record).unwrap();
            let shared = knowing
                .push_at_known(position, record, Some(&known))
                .unwrap();
            assert_eq!(decoded.as_ref(), shared.as_deref(), "at {position}");
            assert_eq!(plain.resume_position(), knowing.resume_position());
            taken.extend(shared);
        }
        let offsets: Vec<u64> = taken.iter().map(|outcome| outcome.offset).collect();
        assert_eq!(offsets, [5, 6, 7, 8, 9]);
        assert!(
            !Arc::ptr_eq(&taken[0], &kept[0]),
            "5 was no longer kept: decoded"
        );
        assert!(Arc::ptr_eq(&taken[1], &kept[1]) && Arc::ptr_eq(&taken[4], &kept[3]));
        assert_eq!(*taken[2], big, "in frames: decoded");
        // Not a frame: refused as `push` refuses it, known outcomes or not.
        assert_eq!(
            knowing.push_at_known(200, &[9, 9], Some(&known)),
            plain
                .push_at(200, &[9, 9])
                .map(|outcome| outcome.map(Arc::new))
        );
    }

    #[test]
    fn a_ten_megabyte_outcome_goes_in_frames_and_comes_back_whole() {
        let outcome = big_outcome(42, 10 << 20);
        let body_bytes = encode_outcome_body(&outcome).len();
        assert!(body_bytes >= 10 << 20, "{body_bytes}");
        let frames = encode_outcome_frames(&outcome);
        assert_eq!(
            frames.len(),
            body_bytes.div_ceil(OUTCOME_FRAME_BODY_BYTES_MAX)
        );
        for (index, frame) in frames.iter().enumerate() {
            assert!(frame.len() <= OUTCOME_FRAME_BYTES_MAX);
            let header = frame_header(frame).unwrap();
            assert_eq!(
                (header.offset, header.index as usize, header.count as usize),
                (42, index, frames.len())
            );
            assert_eq!(header.is_last(), index + 1 == frames.len());
        }
        let mut assembler = OutcomeAssembler::new();
        for frame in &frames[..frames.len() - 1] {
            assert_eq!(assembler.push(frame), Ok(None));
            assert_eq!(assembler.unfinished_offset(), Some(42));
        }
        assert_eq!(assembler.push(frames.last().unwrap()), Ok(Some(outcome)));
        assert_eq!(
            (assembler.unfinished_offset(), assembler.frames_ignored()),
            (None, 0)
        );
    }

    #[test]
    fn a_torn_outcome_is_dropped_when_it_is_published_again_from_frame_0() {
        let torn = big_outcome(7, 1 << 20);
        let frames = encode_outcome_frames(&torn);
        assert!(frames.len() >= 4);
        let next = tick_outcome(8);
        let mut log: Vec<Vec<u8>> = encode_outcome_frames(&tick_outcome(6));
        // The publisher stopped after three frames, then published it again, whole.
        log.extend_from_slice(&frames[..3]);
        log.extend_from_slice(&frames);
        log.extend(encode_outcome_frames(&next));
        let mut assembler = OutcomeAssembler::new();
        let outcomes = assemble(&mut assembler, &log);
        assert_eq!(outcomes, [tick_outcome(6), torn, next]);
        assert_eq!(assembler.frames_ignored(), 3);
    }

    #[test]
    fn frames_that_continue_nothing_are_ignored_and_counted() {
        let big = big_outcome(3, 600 << 10);
        let frames = encode_outcome_frames(&big);
        assert_eq!(frames.len(), 3);
        let other = encode_outcome_frames(&big_outcome(4, 600 << 10));
        let mut assembler = OutcomeAssembler::new();
        // A reader that starts inside an outcome: its tail continues nothing.
        assert_eq!(assembler.push(&frames[1]), Ok(None));
        assert_eq!(assembler.push(&frames[2]), Ok(None));
        assert_eq!(assembler.frames_ignored(), 2);
        // Mid-outcome: another outcome's frame 1, a repeated frame, a skipped index.
        assert_eq!(assembler.push(&frames[0]), Ok(None));
        assert_eq!(assembler.push(&other[1]), Ok(None));
        assert_eq!(assembler.push(&frames[2]), Ok(None));
        assert_eq!(assembler.push(&frames[1]), Ok(None));
        assert_eq!(assembler.push(&frames[1]), Ok(None));
        assert_eq!(assembler.frames_ignored(), 5);
        // The outcome being assembled was kept through all that.
        assert_eq!(assembler.push(&frames[2]), Ok(Some(big)));
    }

    /// Two publishers writing at once (an old primary that has not read the `Promote` yet,
    /// and the new one): their frames interleave, a copy may be cut short, the old one
    /// repeats outcomes already published. Every outcome still comes out whole, in the
    /// order of its first completion, whatever the interleaving.
    #[test]
    fn frames_of_two_publishers_interleaved_make_every_outcome() {
        let outcomes: Vec<Outcome> = (10..14)
            .map(|offset| match offset % 2 {
                0 => big_outcome(offset, 600 << 10),
                _ => tick_outcome(offset),
            })
            .collect();
        let frames: Vec<Vec<u8>> = outcomes.iter().flat_map(encode_outcome_frames).collect();
        // The new primary publishes 10..14; the old one 10..12, stopping inside 12.
        let old: Vec<Vec<u8>> = frames[..frames.len() - 3].to_vec();
        assert!(frame_header(old.last().unwrap()).unwrap().offset == 12);
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..64 {
            // A random interleaving of the two sequences, each in its own order.
            let (mut new_next, mut old_next) = (0, 0);
            let mut log = Vec::new();
            while new_next < frames.len() || old_next < old.len() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let take_old =
                    old_next < old.len() && (new_next == frames.len() || rng.is_multiple_of(2));
                if take_old {
                    log.push(&old[old_next]);
                    old_next += 1;
                } else {
                    log.push(&frames[new_next]);
                    new_next += 1;
                }
            }
            let mut assembler = OutcomeAssembler::new();
            let mut seen = Vec::new();
            for record in log {
                if let Some(outcome) = assembler.push(record).unwrap() {
                    // Readers drop an outcome they already have (by request offset).
                    if seen
                        .last()
                        .is_none_or(|last: &Outcome| outcome.offset > last.offset)
                    {
                        seen.push(outcome);
                    }
                }
            }
            assert_eq!(seen, outcomes);
        }
    }

    /// A reader resumes after the last record that completed an outcome outside any
    /// other copy: here an old primary's repeat of outcome 4 lands inside the new one's
    /// outcome 5, and resuming after it would lose 5's first frame.
    #[test]
    fn a_reader_never_resumes_inside_a_copy() {
        let five = encode_outcome_frames(&big_outcome(5, 300 << 10));
        assert_eq!(five.len(), 2);
        let four = encode_outcome_frames(&tick_outcome(4)).remove(0);
        let mut assembler = OutcomeAssembler::new();
        assert_eq!(assembler.push_at(99, &four), Ok(Some(tick_outcome(4))));
        assert_eq!(assembler.resume_position(), Some(100));
        assert_eq!(assembler.push_at(100, &five[0]), Ok(None));
        assert_eq!(assembler.push_at(101, &four), Ok(Some(tick_outcome(4))));
        assert_eq!(assembler.resume_position(), Some(100), "5 is unfinished");
        assert!(
            matches!(assembler.push_at(102, &five[1]), Ok(Some(outcome)) if outcome.offset == 5)
        );
        assert_eq!(assembler.resume_position(), Some(103));
    }

    /// Unfinished copies are bounded: past `OUTCOME_COPIES_MAX` the oldest is dropped.
    #[test]
    fn at_most_a_few_outcomes_are_assembled_at_once() {
        let mut assembler = OutcomeAssembler::new();
        let firsts: Vec<Vec<u8>> = (0..=OUTCOME_COPIES_MAX as u64)
            .map(|offset| encode_outcome_frames(&big_outcome(offset, 600 << 10)).remove(0))
            .collect();
        for first in &firsts {
            assert_eq!(assembler.push(first), Ok(None));
        }
        assert_eq!(assembler.copies.len(), OUTCOME_COPIES_MAX);
        assert_eq!(
            (assembler.unfinished_offset(), assembler.dropped_last()),
            (Some(1), Some(0))
        );
        assert_eq!(assembler.frames_ignored(), 1);
        // A single-frame outcome of an offset being assembled completes it: its copies go.
        assert_eq!(
            assembler.push(&encode_outcome_frames(&tick_outcome(1))[0]),
            Ok(Some(tick_outcome(1)))
        );
        assert_eq!(
            (assembler.unfinished_offset(), assembler.frames_ignored()),
            (Some(2), 2)
        );
    }

    #[test]
    fn garbage_frames_are_errors_not_panics() {
        fn check_in(assembler: &mut OutcomeAssembler, record: &[u8], expected: &str) {
            let error = assembler.push(record).unwrap_err();
            assert!(
                error.contains(expected),
                "{record:?}: {error:?} does not say {expected:?}"
            );
        }
        let mut assembler = OutcomeAssembler::new();
        let check = |record: &[u8], expected: &str| {
            check_in(&mut OutcomeAssembler::new(), record, expected)
        };
        let mut header = vec![4, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        check(&[], "empty");
        check(&[9, 0, 0], "unknown outcome record version 9");
        // Version 1 is refused with what to do about it.
        let version_1 = [1, 0, 0, 15, 0];
        check(&version_1, "version 1");
        check(&version_1, "re-derive them by replay");
        let version_2 = [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        check(&version_2, "version 2");
        check(&version_2, "re-derive them by replay");
        let version_3 = [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        check(&version_3, "version 3");
        check(&version_3, "re-derive them by replay");
        check(&header[..10], "shorter than the 17-byte frame header");
        // Frame 1 of 1, and a count of 0.
        header[9] = 1;
        check(&header, "the index is not below the count");
        header[9] = 0;
        header[13] = 0;
        check(&header, "the index is not below the count");
        header[13] = 1;
        // A whole frame of garbage, bytes after the outcome, an offset the body denies.
        let mut garbage = header.clone();
        garbage.extend_from_slice(&[0xff; 8]);
        check(&garbage, "undecodable outcome of request 9");
        let mut trailing = encode_outcome_frames(&tick_outcome(9)).remove(0);
        trailing.push(0);
        check(&trailing, "1 trailing bytes after the outcome of request 9");
        let mut other_offset = encode_outcome_frames(&tick_outcome(9)).remove(0);
        other_offset[1] = 8;
        check(
            &other_offset,
            "the frames say request 8 but the outcome answers request 9",
        );
        let mut oversized = header.clone();
        oversized.resize(OUTCOME_FRAME_BYTES_MAX + 1, 0);
        check(&oversized, "over the 262144-byte limit");
        // Frames of garbage split over two records are an error at the last one.
        let mut first = vec![4, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0xff];
        assert_eq!(assembler.push(&first), Ok(None));
        first[9] = 1;
        check_in(&mut assembler, &first, "undecodable outcome of request 5");
        // Still usable.
        assert_eq!(
            assembler.push(&encode_outcome_frames(&tick_outcome(10))[0]),
            Ok(Some(tick_outcome(10)))
        );
    }
}
