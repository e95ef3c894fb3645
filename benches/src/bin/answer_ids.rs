//! What an answer's ids cost to write into its JSON: a booking of two seats shows a
//! booking, hold and event id, its seats' labels, and a ticket id, code and seat label a
//! ticket. Written through
//! `core::fmt` (serde's `collect_str` of a `write!`-based `Display`, as answers did until
//! session 61) and on the stack (`engine::ids::IdText`, one `serialize_str` each). The
//! median of RUNS runs of ANSWERS answers, nanoseconds an answer's ids.
//!
//! ```sh
//! cargo run --release -p boxoffice-benches --bin answer_ids -- 1000000 5
//! ```

// The `boxoffice` binary's allocator (mimalloc), set by the benches' library.
use boxoffice_benches as _;

use engine::layout::SeatLabel;
use engine::tickets::{TicketCode, TicketMac};
use engine::{BookingId, EventId, HoldId, TicketId};
use serde::{Serialize, Serializer};
use std::fmt;
use std::hint::black_box;
use std::time::Instant;

/// The ids as the earlier `Display`s wrote them (`write!` with arguments, nested for a
/// code), serialized by `collect_str`.
struct ThroughFmt<'a>(&'a Ids);

struct FmtTicket(TicketId);
impl fmt::Display for FmtTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t_{}_{}", self.0.booking.0, self.0.index)
    }
}

struct FmtCode(TicketCode);
impl fmt::Display for FmtCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.text();
        let (ticket, hex) = text.split_once('.').expect("a code has a dot");
        let ticket = TicketId::parse(ticket).expect("a ticket id");
        write!(f, "{}.{hex}", FmtTicket(ticket))
    }
}

struct Ids {
    booking: BookingId,
    hold: HoldId,
    event: EventId,
    tickets: [(TicketId, TicketCode); 2],
    seats: [SeatLabel<'static>; 2],
}

impl Serialize for ThroughFmt<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let ids = self.0;
        let mut seq = serializer.serialize_seq(Some(11))?;
        seq.serialize_element(&Collected(format_args!("b_{}", ids.booking.0)))?;
        seq.serialize_element(&Collected(format_args!("h_{}", ids.hold.0)))?;
        seq.serialize_element(&Collected(format_args!("ev_{}", ids.event.0)))?;
        for seat in &ids.seats {
            seq.serialize_element(&Collected(seat))?;
        }
        for ((ticket, code), seat) in ids.tickets.iter().zip(&ids.seats) {
            seq.serialize_element(&Collected(FmtTicket(*ticket)))?;
            seq.serialize_element(&Collected(FmtCode(*code)))?;
            seq.serialize_element(&Collected(seat))?;
        }
        seq.end()
    }
}

struct Collected<T>(T);
impl<T: fmt::Display> Serialize for Collected<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

struct OnStack<'a>(&'a Ids);

impl Serialize for OnStack<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let ids = self.0;
        let mut seq = serializer.serialize_seq(Some(11))?;
        seq.serialize_element(&*ids.booking.text())?;
        seq.serialize_element(&*ids.hold.text())?;
        seq.serialize_element(&*ids.event.text())?;
        for seat in &ids.seats {
            seq.serialize_element(&OnStackLabel(seat))?;
        }
        for ((ticket, code), seat) in ids.tickets.iter().zip(&ids.seats) {
            seq.serialize_element(&*ticket.text())?;
            seq.serialize_element(code)?;
            seq.serialize_element(&OnStackLabel(seat))?;
        }
        seq.end()
    }
}

/// As `ingress::api::ShowText` writes a label: on the stack when it fits.
struct OnStackLabel<'a>(&'a SeatLabel<'a>);

impl Serialize for OnStackLabel<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 64];
        match self.0.write_into(&mut text) {
            Some(label) => serializer.serialize_str(label),
            None => serializer.collect_str(self.0),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let answers: usize = boxoffice_benches::next_arg(&mut args, 1_000_000, "ANSWERS");
    let runs: usize = boxoffice_benches::next_arg(&mut args, 5, "RUNS");
    let mac = TicketMac::new(b"a bench's ticket secret");
    let ids: Vec<Ids> = (0..1024u64)
        .map(|n| {
            let booking = BookingId(1_000_000 + 7 * n);
            let ticket = |index| TicketId { booking, index };
            Ids {
                booking,
                hold: HoldId(2_000_000 + 7 * n),
                event: EventId(u32::try_from(n % 120).expect("small")),
                tickets: [1, 2].map(|index| (ticket(index), mac.code_of(ticket(index)))),
                seats: [0, 1].map(|seat| SeatLabel {
                    section: "Floor",
                    row: "12",
                    number: u32::try_from(2 * (n % 500) + seat + 1).expect("small"),
                }),
            }
        })
        .collect();
    let mut out = Vec::with_capacity(512);
    for ids in &ids {
        out.clear();
        serde_json::to_writer(&mut out, &ThroughFmt(ids)).expect("writes");
        let through_fmt = out.clone();
        out.clear();
        serde_json::to_writer(&mut out, &OnStack(ids)).expect("writes");
        assert_eq!(out, through_fmt, "the same text either way");
    }
    let mut time = |write: &dyn Fn(&mut Vec<u8>, &Ids)| -> f64 {
        let mut ns: Vec<f64> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                for answer in 0..answers {
                    out.clear();
                    write(&mut out, black_box(&ids[answer % ids.len()]));
                    black_box(&out);
                }
                start.elapsed().as_nanos() as f64 / answers as f64
            })
            .collect();
        boxoffice_benches::median(&mut ns)
    };
    let through_fmt =
        time(&|out, ids| serde_json::to_writer(out, &ThroughFmt(ids)).expect("writes"));
    let on_stack = time(&|out, ids| serde_json::to_writer(out, &OnStack(ids)).expect("writes"));
    println!(
        "{answers} answers' ids (3 ids, 2 seats, 2 tickets with their codes and seats), median of {runs} runs: \
         through core::fmt {through_fmt:.0} ns, on the stack {on_stack:.0} ns ({:.2}x)",
        on_stack / through_fmt
    );
}
