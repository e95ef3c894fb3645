//! Identifiers. Inside the engine everything is a dense integer; the string forms
//! (`ev_12`, `h_7`, ...) exist only at the edges and are parsed/printed here so every
//! crate agrees on them.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl $name {
            /// The prefix of the string form.
            pub const PREFIX: &'static str = $prefix;

            /// Parses the string form (`<prefix><number>`); `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                let digits = text.strip_prefix($prefix)?;
                if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // A leading zero would give two spellings of one id.
                if digits.len() > 1 && digits.starts_with('0') {
                    return None;
                }
                digits.parse::<$inner>().ok().map($name)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                u64::from(id.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }
    };
}

id_type!(
    /// An event: its index in the engine's event table.
    EventId, u32, "ev_"
);
id_type!(
    /// A hold; ids are never reused.
    HoldId, u64, "h_"
);
id_type!(
    /// A booking (a confirmed hold); ids are never reused.
    BookingId, u64, "b_"
);
id_type!(
    /// A waitlist entry; ids are never reused and their order is the FCFS order.
    WaiterId, u64, "w_"
);
id_type!(
    /// A service desk.
    DeskId, u32, "desk_"
);
id_type!(
    /// A service-desk ticket; ids are never reused.
    DeskTicketId, u64, "dt_"
);

/// A ticket inside a booking: `t_<booking>_<index>`, index from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketId {
    pub booking: BookingId,
    pub index: u32,
}

impl TicketId {
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("t_")?;
        let (booking, index) = rest.split_once('_')?;
        let booking = BookingId::parse(&format!("b_{booking}"))?;
        let index = u32::try_from(BookingId::parse(&format!("b_{index}"))?.0).ok()?;
        if index == 0 {
            return None;
        }
        Some(TicketId { booking, index })
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t_{}_{}", self.booking.0, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        assert_eq!(EventId::parse("ev_12"), Some(EventId(12)));
        assert_eq!(EventId(12).to_string(), "ev_12");
        for bad in [
            "",
            "ev_",
            "ev_x",
            "ev_012",
            "h_1",
            "ev_99999999999",
            "ev_-1",
            "ev_1 ",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
        let ticket = TicketId {
            booking: BookingId(5),
            index: 2,
        };
        assert_eq!(ticket.to_string(), "t_5_2");
        assert_eq!(TicketId::parse("t_5_2"), Some(ticket));
        assert_eq!(TicketId::parse("t_5_0"), None);
        assert_eq!(TicketId::parse("t_5"), None);
    }
}
