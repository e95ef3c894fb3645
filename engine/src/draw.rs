//! The arrival window's draw: commit–reveal, the keyed order, and the fallback seed.
//!
//! An event created with a [`DrawSpec`] has an arrival window of `arrival_window_ms` before
//! its `sales_open_at`. Waiting holds and waitlist joins in the window are *entries*: they
//! get their waitlist id at once but no place. At opening (the first record at or past
//! `sales_open_at`, like an expiry) the engine orders the entries by [`draw_order`] and
//! they become the event's waitlist in that order, ahead of everyone who comes later.
//!
//! The seed is the organiser's: the create record carries `commitment = SHA-256(seed)`, a
//! reveal record before opening carries the seed, and the engine checks it against the
//! commitment ([`commitment_of`]). A seed not revealed by opening is replaced by the
//! fallback ([`fallback_seed`]): a hash chain of the requests the engine applied in the
//! window's last second ([`fallback_link`]), which no single party controls in advance.
//!
//! Everything here is a pure function of public values (the seed, the event id, the entry
//! ids), so anyone can recompute a published draw: `GET /v1/events/{id}/draw` publishes
//! exactly these inputs.

use crate::ids::{EventId, WaiterId};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A seed, a commitment and every digest here are 32 bytes.
pub const DRAW_BYTES: usize = 32;

/// The longest arrival window: a day. Longer windows would only keep entries waiting.
pub const ARRIVAL_WINDOW_MS_MAX: u64 = 24 * 60 * 60 * 1000;

/// The fallback seed chains the records of the window's last second.
pub const FALLBACK_SPAN_MS: u64 = 1000;

/// An event's arrival window and the organiser's commitment to the draw's seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawSpec {
    /// How long before `sales_open_at` the window opens (1 ms to [`ARRIVAL_WINDOW_MS_MAX`]).
    pub arrival_window_ms: u64,
    /// SHA-256 of the seed the organiser will reveal.
    pub commitment: [u8; DRAW_BYTES],
}

/// Where a made draw's seed came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DrawSeedSource {
    /// The organiser revealed it before opening and it matched the commitment.
    Revealed,
    /// Not revealed by opening: [`fallback_seed`] of the chain of `records` requests applied
    /// from `from_ms` to `to_ms` (log times, within the window's last second).
    Fallback {
        records: u32,
        from_ms: u64,
        to_ms: u64,
    },
}

/// `SHA-256(seed)`: what the organiser commits to.
pub fn commitment_of(seed: &[u8; DRAW_BYTES]) -> [u8; DRAW_BYTES] {
    Sha256::digest(seed).into()
}

/// An entry's draw key: `HMAC-SHA256(key = seed, message = "<event id>/<entry id>")`, the
/// ids in their string forms (`ev_3/w_17`).
pub fn draw_key(seed: &[u8; DRAW_BYTES], event: EventId, entry: WaiterId) -> [u8; DRAW_BYTES] {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed).expect("HMAC takes keys of any length");
    mac.update(format!("{event}/{entry}").as_bytes());
    mac.finalize().into_bytes().into()
}

/// The entries in draw order: ascending by [`draw_key`] (ties, which need a SHA-256
/// collision, by entry id). A permutation of `entries` that does not depend on their order.
pub fn draw_order(seed: &[u8; DRAW_BYTES], event: EventId, entries: &[WaiterId]) -> Vec<WaiterId> {
    let mut keyed: Vec<([u8; DRAW_BYTES], WaiterId)> = entries
        .iter()
        .map(|&entry| (draw_key(seed, event, entry), entry))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, entry)| entry).collect()
}

/// The chain's start for an event: `SHA-256("boxoffice draw fallback" || commitment)`.
pub fn fallback_start(commitment: &[u8; DRAW_BYTES]) -> [u8; DRAW_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(b"boxoffice draw fallback");
    hasher.update(commitment);
    hasher.finalize().into()
}

/// One link: `SHA-256(chain || offset (u64 LE) || log time (u64 LE) || SHA-256(record))`,
/// where `record` is the request's log record (`wire::encode_request`).
pub fn fallback_link(
    chain: &[u8; DRAW_BYTES],
    offset: u64,
    time_ms: u64,
    record: &[u8],
) -> [u8; DRAW_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(chain);
    hasher.update(offset.to_le_bytes());
    hasher.update(time_ms.to_le_bytes());
    hasher.update(Sha256::digest(record));
    hasher.finalize().into()
}

/// The fallback seed is the chain's last link (its start when no record came).
pub fn fallback_seed(chain: &[u8; DRAW_BYTES]) -> [u8; DRAW_BYTES] {
    *chain
}

/// Lower-case hex, as the API shows seeds, commitments and digests.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// 64 hex digits (either case) to 32 bytes; `None` for anything else.
pub fn parse_hex32(text: &str) -> Option<[u8; DRAW_BYTES]> {
    if text.len() != 2 * DRAW_BYTES || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; DRAW_BYTES];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_32_bytes() {
        let bytes: [u8; 32] = std::array::from_fn(|index| (index * 7) as u8);
        assert_eq!(parse_hex32(&to_hex(&bytes)), Some(bytes));
        assert_eq!(parse_hex32(&to_hex(&bytes).to_uppercase()), Some(bytes));
        assert_eq!(parse_hex32("ab"), None);
        assert_eq!(parse_hex32(&"g".repeat(64)), None);
        assert_eq!(parse_hex32(&"é".repeat(32)), None);
        assert_eq!(parse_hex32(&"+1".repeat(32)), None);
    }

    /// SHA-256 of 32 zero bytes, from the standard's definition (any sha256sum).
    #[test]
    fn the_commitment_is_plain_sha256() {
        assert_eq!(
            to_hex(&commitment_of(&[0; 32])),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }
}
