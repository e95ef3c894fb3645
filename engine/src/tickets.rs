//! Ticket codes: `<ticket id>.<first 16 hex digits of HMAC-SHA256(secret, ticket id)>`.
//! Every replica derives the same code; without the secret a code cannot be forged.
//! And [`TicketsUsed`]: which of a booking's tickets were checked in.

use crate::ids::{IdText, TicketId};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const MAC_HEX_DIGITS: usize = 16;

/// A ticket's code ([`TicketMac::code_of`]): displays as `<ticket id>.<16 hex digits>`,
/// and serializes as that text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicketCode {
    ticket: TicketId,
    /// The MAC's first bytes (its first 16 hex digits).
    mac_prefix: [u8; MAC_HEX_DIGITS / 2],
}

impl TicketCode {
    /// `<ticket id>.<16 hex digits>`, on the stack.
    pub fn text(&self) -> IdText {
        let mut hex = [0u8; MAC_HEX_DIGITS];
        for (index, byte) in self.mac_prefix.iter().enumerate() {
            hex[2 * index] = b"0123456789abcdef"[usize::from(byte >> 4)];
            hex[2 * index + 1] = b"0123456789abcdef"[usize::from(byte & 0xf)];
        }
        let mut text = self.ticket.text();
        text.push(".");
        text.push(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
        text
    }
}

impl std::fmt::Display for TicketCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.text())
    }
}

impl Serialize for TicketCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

/// The ticket secret's HMAC with its key already absorbed: a code then hashes two blocks
/// instead of four (the keyed inner and outer pads are cloned, not hashed again). The
/// read side makes one per process and derives every ticket's code from it.
#[derive(Clone)]
pub struct TicketMac {
    keyed: Hmac<Sha256>,
}

impl TicketMac {
    pub fn new(secret: &[u8]) -> TicketMac {
        TicketMac {
            keyed: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    fn mac(&self, ticket: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(ticket.as_bytes());
        mac
    }

    /// `<ticket id>.<first 16 hex digits of HMAC-SHA256(secret, ticket id)>`.
    pub fn code(&self, ticket: TicketId) -> String {
        self.code_of(ticket).to_string()
    }

    /// [`TicketMac::code`] as a value that writes itself where it is shown (an answer's
    /// JSON), without a `String` made for it. Perf: the ticket id is written for the MAC
    /// on the stack (this runs once per ticket of every booking answer).
    pub fn code_of(&self, ticket: TicketId) -> TicketCode {
        let mut mac = self.keyed.clone();
        mac.update(ticket.text().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut prefix = [0u8; MAC_HEX_DIGITS / 2];
        prefix.copy_from_slice(&digest[..MAC_HEX_DIGITS / 2]);
        TicketCode {
            ticket,
            mac_prefix: prefix,
        }
    }

    /// The ticket a code names, if the code is genuine.
    pub fn verify(&self, code: &str) -> Option<TicketId> {
        let (ticket, hex) = code.split_once('.')?;
        let ticket = TicketId::parse(ticket)?;
        if hex.len() != MAC_HEX_DIGITS
            || !hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        let bytes: Vec<u8> = (0..MAC_HEX_DIGITS / 2)
            .map(|index| u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16))
            .collect::<Result<_, _>>()
            .ok()?;
        self.mac(&ticket.text())
            .verify_truncated_left(&bytes)
            .ok()?;
        Some(ticket)
    }
}

impl std::fmt::Debug for TicketMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketMac(..)")
    }
}

/// [`TicketMac::code`] under `secret` (one code: the key is absorbed for it alone).
pub fn code(secret: &[u8], ticket: TicketId) -> String {
    TicketMac::new(secret).code(ticket)
}

/// [`TicketMac::verify`] under `secret`.
pub fn verify(secret: &[u8], code: &str) -> Option<TicketId> {
    TicketMac::new(secret).verify(code)
}

/// Which of a booking's tickets were checked in, by ticket index from 0: the engine's
/// bookings and the ingress's read model keep them alike. Encodes exactly like the
/// `Vec<bool>` it replaces (a length, then a flag per ticket). Perf: a booking none of
/// whose tickets is used (every booking until its event's doors open) keeps no flags, so
/// confirming a hold allocates none (the read model's `vec![false; n]` was an allocation
/// per booking on the outcome follower).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketsUsed {
    count: u32,
    /// Empty while no ticket is used (one canonical form, so equal states compare
    /// equal); otherwise `count` flags.
    used: Vec<bool>,
}

impl TicketsUsed {
    /// `count` tickets, none used.
    pub fn unused(count: u32) -> TicketsUsed {
        TicketsUsed {
            count,
            used: Vec::new(),
        }
    }

    /// How many tickets the booking has.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the booking has no ticket (never for a booking the engine made).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether any ticket was checked in.
    pub fn any(&self) -> bool {
        !self.used.is_empty()
    }

    /// Whether ticket `index` is used; `None` when the booking has no such ticket.
    pub fn get(&self, index: usize) -> Option<bool> {
        (index < self.len()).then(|| self.used.get(index).copied().unwrap_or(false))
    }

    /// Asserts the one canonical form (for `check_invariants`).
    pub fn check(&self) {
        assert!(
            self.used.is_empty() || (self.used.len() == self.len() && self.used.contains(&true)),
            "ticket flags are kept only once a ticket is used, one per ticket"
        );
    }

    /// Marks ticket `index` (which exists) used.
    pub fn set_used(&mut self, index: usize) {
        assert!(index < self.len(), "the booking has ticket {index}");
        if self.used.is_empty() {
            self.used = vec![false; self.len()];
        }
        self.used[index] = true;
        debug_assert!(self.used.len() == self.len() && self.any());
    }
}

impl Serialize for TicketsUsed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut flags = serializer.serialize_seq(Some(self.len()))?;
        for index in 0..self.len() {
            flags.serialize_element(&self.get(index).expect("in range"))?;
        }
        flags.end()
    }
}

impl<'de> Deserialize<'de> for TicketsUsed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TicketsUsed, D::Error> {
        let flags = Vec::<bool>::deserialize(deserializer)?;
        let count = u32::try_from(flags.len())
            .map_err(|_| serde::de::Error::custom("a booking has fewer than 2^32 tickets"))?;
        Ok(TicketsUsed {
            count,
            used: if flags.contains(&true) {
                flags
            } else {
                Vec::new()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BookingId;

    /// The code written without a `String` is the code as it was made before: the id's
    /// text, a point, the first 16 hex digits of the HMAC of that text; for the longest
    /// ids too; and it serializes as that text.
    #[test]
    fn a_code_written_in_place_is_the_code_made_as_a_string() {
        let mac = TicketMac::new(b"secret");
        for (booking, index) in [(0, 0), (7, 2), (123_456_789, 17), (u64::MAX, u32::MAX)] {
            let ticket = TicketId {
                booking: BookingId(booking),
                index,
            };
            let id = ticket.to_string();
            let mut hmac = Hmac::<Sha256>::new_from_slice(b"secret").expect("any key");
            hmac.update(id.as_bytes());
            let digest = hmac.finalize().into_bytes();
            let hex: String = digest[..MAC_HEX_DIGITS / 2]
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            let expected = format!("{id}.{hex}");
            assert_eq!(mac.code(ticket), expected);
            assert_eq!(mac.code_of(ticket).to_string(), expected);
            assert_eq!(
                serde_json::to_string(&mac.code_of(ticket)).expect("serializes"),
                format!("\"{expected}\"")
            );
        }
    }

    #[test]
    fn codes_verify_and_forgeries_do_not() {
        let ticket = TicketId {
            booking: BookingId(7),
            index: 2,
        };
        let genuine = code(b"secret", ticket);
        assert!(genuine.starts_with("t_7_2."));
        assert_eq!(verify(b"secret", &genuine), Some(ticket));
        assert_eq!(verify(b"other secret", &genuine), None);
        let other = TicketId {
            booking: BookingId(7),
            index: 3,
        };
        let forged = format!("{other}{}", &genuine[genuine.find('.').unwrap()..]);
        assert_eq!(verify(b"secret", &forged), None);
        let mac = TicketMac::new(b"secret");
        assert_eq!(
            mac.code(ticket),
            genuine,
            "the prepared key makes the same code"
        );
        assert_eq!(mac.verify(&genuine), Some(ticket));
        assert_eq!(mac.verify(&forged), None);
        for bad in [
            "",
            "t_7_2",
            "t_7_2.",
            "t_7_2.zzzzzzzzzzzzzzzz",
            "x.0123456789abcdef",
        ] {
            assert_eq!(verify(b"secret", bad), None, "{bad:?}");
        }
    }

    /// Ticket flags encode exactly like the `Vec<bool>` they replaced, and decode to the
    /// one canonical form (no flags kept while none is used).
    #[test]
    fn ticket_flags_encode_like_a_vec_of_bools() {
        let config = bincode::config::standard();
        for (count, used) in [(0, vec![]), (1, vec![]), (3, vec![1]), (200, vec![0, 199])] {
            let mut flags = TicketsUsed::unused(count);
            let mut expected = vec![false; count as usize];
            for index in used {
                flags.set_used(index);
                expected[index] = true;
            }
            flags.check();
            let bytes = bincode::serde::encode_to_vec(&flags, config).unwrap();
            assert_eq!(
                bytes,
                bincode::serde::encode_to_vec(&expected, config).unwrap()
            );
            let (decoded, _): (TicketsUsed, usize) =
                bincode::serde::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(decoded, flags);
            decoded.check();
            for (index, used) in expected.iter().enumerate() {
                assert_eq!(flags.get(index), Some(*used));
            }
            assert_eq!(flags.get(count as usize), None);
        }
    }
}
