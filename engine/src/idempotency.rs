//! Idempotency keys bound to their request.
//!
//! A key lives in a scope: its principal and, where the command names one, the event (or
//! service desk) it acts on. Within a scope a key answers exactly one request, recognised
//! by its *fingerprint*: a digest of the command's bincode encoding, which fully encodes
//! the HTTP request's method, path and body. A repeat with the same fingerprint gets the
//! first answer; the same key with another fingerprint is
//! [`Rejection::IdempotencyKeyReused`](crate::Rejection::IdempotencyKeyReused).
//!
//! Two places answer repeats, both through [`IdempotencyStamp`]: the engine, for a short
//! window of log time (`idempotency_engine_window_ms`: the in-flight retries that reach the
//! log before the first answer is indexed), and the ingress's durable index, fed by the
//! stamps of first answers in the outcomes log, for the rest of the contract's 24 hours.
//! Neither stores the raw key: only the stamp's two digests.

use crate::command::{Command, CommandOf, NamedCommand};
use crate::ids::{DeskId, EventId};
use crate::Principal;
use serde::{Deserialize, Serialize};

/// Digest length: 128 bits, so a collision between two keys or two requests is never
/// expected (about 2^-64 even with 2^32 keys alive at once).
pub const DIGEST_BYTES: usize = 16;

/// What a key is scoped to besides its principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdempotencyScope {
    /// The command names no event or desk (creating one; acting on a hold, booking or
    /// waitlist entry by its id): the principal alone.
    Principal,
    Event(EventId),
    Desk(DeskId),
}

impl IdempotencyScope {
    /// The event or desk the command names; a pure function of the command, so the engine
    /// and the ingress always agree on it.
    pub fn of<U>(command: &CommandOf<U>) -> IdempotencyScope {
        match command {
            CommandOf::UpdateEvent { event, .. }
            | CommandOf::CancelEvent { event, .. }
            | CommandOf::CheckIn { event, .. }
            | CommandOf::CheckInTicket { event, .. }
            | CommandOf::PlaceHold { event, .. }
            | CommandOf::RevealDrawSeed { event, .. }
            | CommandOf::OpenArrivalWindow { event, .. }
            | CommandOf::JoinWaitlist { event, .. }
            | CommandOf::JoinWaitlistIndexed { event, .. } => IdempotencyScope::Event(*event),
            CommandOf::CreateDeskTicket { desk, .. }
            | CommandOf::ConfirmDeskTicket { desk, .. }
            | CommandOf::CancelDeskTicket { desk, .. } => IdempotencyScope::Desk(*desk),
            CommandOf::CreateEvent { .. }
            | CommandOf::CreateEventWithDraw { .. }
            | CommandOf::CreateEventWithTerms { .. }
            | CommandOf::ConfirmHold { .. }
            | CommandOf::ReleaseHold { .. }
            | CommandOf::CancelBooking { .. }
            | CommandOf::LeaveWaitlist { .. }
            | CommandOf::CreateDesk { .. }
            | CommandOf::Tick
            | CommandOf::Promote { .. }
            | CommandOf::Configure { .. } => IdempotencyScope::Principal,
        }
    }
}

/// A keyed request, as the engine remembers it and as its first answer's outcome publishes
/// it (for the ingress's index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdempotencyStamp {
    /// Digest of (principal, scope, key): which key this is, without the key.
    pub key_digest: [u8; DIGEST_BYTES],
    /// Digest of the command: which request the key answers.
    pub fingerprint: [u8; DIGEST_BYTES],
}

impl IdempotencyStamp {
    /// The stamp of a keyed request; `None` for the runtime's own records (ticks,
    /// promotions), which no client can repeat.
    /// For a command that names its user by name (or has none): what every writer of
    /// the log builds today. A command naming its user by id has its stamp from the
    /// engine, which alone can name that user ([`IdempotencyStamp::of_named`]).
    pub fn of(command: &Command, key: &str) -> Option<IdempotencyStamp> {
        let named = command
            .named(|id| panic!("a stamp of a command by user id {id} needs the engine's table"))
            .expect("named by name");
        Self::of_named(&named, key)
    }

    /// The stamp of a keyed request in its named form (`Command::named`): the same for
    /// a user given by name or by id, and the same bytes as before ids existed.
    pub fn of_named(command: &NamedCommand, key: &str) -> Option<IdempotencyStamp> {
        let principal = command.principal();
        if principal == Principal::System {
            return None;
        }
        let scope = IdempotencyScope::of(command);
        Some(IdempotencyStamp {
            key_digest: digest("boxoffice 2026 idempotency key", &(principal, scope, key)),
            fingerprint: fingerprint(command),
        })
    }
}

/// The request's fingerprint: the command's bincode (standard configuration, as in the
/// log) digested. Changing the command's encoding changes fingerprints, so a repeat that
/// straddles such an upgrade is refused as reused rather than answered wrongly.
pub fn fingerprint(command: &NamedCommand) -> [u8; DIGEST_BYTES] {
    digest("boxoffice 2026 idempotency fingerprint", command)
}

/// The first 16 bytes of a domain-separated BLAKE3 of `value`'s bincode, streamed into the
/// hasher (no buffer).
fn digest(context: &str, value: &impl Serialize) -> [u8; DIGEST_BYTES] {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    bincode::serde::encode_into_std_write(value, &mut hasher, bincode::config::standard())
        .expect("hashing cannot fail");
    let mut out = [0; DIGEST_BYTES];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..DIGEST_BYTES]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Selection;
    use crate::ids::HoldId;

    fn hold(user: &str, event: u32, quantity: u32) -> Command {
        Command::PlaceHold {
            user: user.into(),
            event: EventId(event),
            selection: Selection::Best {
                quantity,
                category: None,
                together: false,
            },
            wait: false,
        }
    }

    #[test]
    fn a_stamp_tells_keys_and_requests_apart() {
        let first = IdempotencyStamp::of(&hold("ann", 1, 2), "k").unwrap();
        assert_eq!(IdempotencyStamp::of(&hold("ann", 1, 2), "k"), Some(first));
        // Another body: the same key, another request.
        let other_body = IdempotencyStamp::of(&hold("ann", 1, 3), "k").unwrap();
        assert_eq!(other_body.key_digest, first.key_digest);
        assert_ne!(other_body.fingerprint, first.fingerprint);
        // Another user, another event, another key: another key altogether.
        for other in [
            IdempotencyStamp::of(&hold("bob", 1, 2), "k"),
            IdempotencyStamp::of(&hold("ann", 2, 2), "k"),
            IdempotencyStamp::of(&hold("ann", 1, 2), "k2"),
        ] {
            assert_ne!(other.unwrap().key_digest, first.key_digest);
        }
        // A hold command names no event: the user's own scope.
        let release = Command::ReleaseHold {
            user: "ann".into(),
            hold: HoldId(1),
        };
        assert_eq!(IdempotencyScope::of(&release), IdempotencyScope::Principal);
        assert_eq!(IdempotencyStamp::of(&Command::Tick, "k"), None);
    }

    #[test]
    fn digests_are_pinned() {
        // Stamps live in snapshots and in the ingress's index for a day: a change of the
        // digest is a format change.
        let stamp = IdempotencyStamp::of(&hold("ann", 1, 2), "k").unwrap();
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            (hex(&stamp.key_digest), hex(&stamp.fingerprint)),
            (
                "8db899738833f8ef0d8d615f4076db55".to_string(),
                "5fa559fc740c369502489f3322da00f5".to_string()
            )
        );
    }
}
