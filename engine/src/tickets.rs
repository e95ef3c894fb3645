//! Ticket codes: `<ticket id>.<first 16 hex digits of HMAC-SHA256(secret, ticket id)>`.
//! Every replica derives the same code; without the secret a code cannot be forged.

use crate::ids::TicketId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const MAC_HEX_DIGITS: usize = 16;

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
        // Perf: one string, grown in place (this runs once per ticket of every booking).
        let mut code = ticket.to_string();
        let digest = self.mac(&code).finalize().into_bytes();
        code.reserve(1 + MAC_HEX_DIGITS);
        code.push('.');
        for byte in &digest[..MAC_HEX_DIGITS / 2] {
            code.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            code.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
        }
        code
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
        self.mac(&ticket.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BookingId;

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
}
