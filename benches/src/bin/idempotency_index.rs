//! Bytes per key of the ingress's idempotency index (`ingress::idempotency_index`), and
//! the cost of its two operations, for BENCHMARKS.md.
//!
//! Writes `keys` first answers through `IdempotencyIndex::record` in batches of 512 (as the
//! outcome follower does), then reads RocksDB's `rocksdb.total-sst-files-size` after a
//! flush and after a full compaction (the steady state: no overwrites or deletes are
//! pending), and times look-ups of present keys (a repeat) and of absent keys (every new
//! keyed write asks first). Three kinds of entry:
//! - `hold`: the answer to a best-available hold of two seats (what most keyed writes are);
//! - `confirm`: the answer to its confirm (a booking with two ticket codes);
//! - `position`: the alternative design, no answer but the outcome's position in the
//!   outcomes log (fingerprint + log time + offset), written with the index's options.
//!
//! Run in release, on a real disk:
//! `cargo run --release -p boxoffice-benches --bin idempotency_index -- /tmp/idem-bench 2000000`

use engine::{
    BookingId, BookingView, Command, EventId, HoldId, HoldView, IdempotencyStamp, Items, Outcome,
    Reply, Selection,
};
use ingress::idempotency_index::{Found, IdempotencyIndex};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

const BATCH: usize = 512;
const LOOKUPS: u64 = 200_000;
const T0: u64 = 1_800_000_000_000;
const WINDOW_MS: u64 = 24 * 3_600_000;

fn user(i: u64) -> String {
    format!("user-{}", i % 1_000_000)
}

fn stamp(i: u64) -> IdempotencyStamp {
    let command = Command::PlaceHold {
        user: engine::UserRef::Name(user(i)),
        event: EventId((i % 20) as u32),
        selection: Selection::Best {
            quantity: 2,
            category: Some("Standard".into()),
            together: true,
        },
        wait: false,
    };
    // Keys as a client makes them: a UUID-like string per request.
    IdempotencyStamp::of(&command, &format!("{i:08x}-4e2f-9c1d-{:012x}", i * 7919)).unwrap()
}

fn answer(kind: &str, i: u64) -> Result<Reply, engine::Rejection> {
    let seat = (i % 10_000) as u32;
    let event = EventId((i % 20) as u32);
    match kind {
        "hold" => Ok(Reply::HoldPlaced(HoldView {
            hold: HoldId(i + 1),
            event,
            user: user(i).into(),
            items: Items::Seats(vec![seat, seat + 1].into()),
            created_at_ms: T0 + i / 25,
            expires_at_ms: T0 + i / 25 + 300_000,
            waiter: None,
        })),
        "confirm" => Ok(Reply::HoldConfirmed(BookingView {
            booking: BookingId(i + 1),
            hold: HoldId(i + 1),
            event,
            user: user(i).into(),
            items: Items::Seats(vec![seat, seat + 1].into()),
            total_cents: 10_000,
            payment_ref: format!("pay_{:016x}", i * 104_729).into(),
            booked_at_ms: T0 + i / 25,
        })),
        other => panic!("unknown kind {other}"),
    }
}

fn outcome(kind: &str, i: u64) -> Outcome {
    Outcome {
        offset: 1_000_000_000 + i,
        time_ms: T0 + i / 25,
        replayed: false,
        result: answer(kind, i),
        effects: Vec::new(),
        effects_before_reply: 0,
        idempotency: Some(stamp(i)),
    }
}

struct Measured {
    sst_flushed: u64,
    sst_compacted: u64,
    write_keys_per_s: f64,
}

fn measure_index(dir: &Path, kind: &str, keys: u64) -> Measured {
    let index = IdempotencyIndex::open(Some(dir), WINDOW_MS).expect("opening the index");
    let started = Instant::now();
    let mut first = 0;
    while first < keys {
        let batch: Vec<Outcome> = (first..keys.min(first + BATCH as u64))
            .map(|i| outcome(kind, i))
            .collect();
        index.record(&batch).expect("recording");
        first += BATCH as u64;
    }
    let write_keys_per_s = keys as f64 / started.elapsed().as_secs_f64();
    let sst_flushed = index.total_sst_bytes().unwrap();
    index.compact().unwrap();
    let sst_compacted = index.total_sst_bytes().unwrap();
    // Look-ups: repeats (present keys, spread over the whole index) and new keys.
    let started = Instant::now();
    for probe in 0..LOOKUPS {
        let i = probe * 7_919 % keys;
        let found = index.look_up(&stamp(i)).unwrap();
        assert!(matches!(found, Some(Found::Answer(_))), "key {i}");
    }
    let hit_us = started.elapsed().as_secs_f64() * 1e6 / LOOKUPS as f64;
    let started = Instant::now();
    for probe in 0..LOOKUPS {
        assert_eq!(index.look_up(&stamp(keys + probe)).unwrap(), None);
    }
    let miss_us = started.elapsed().as_secs_f64() * 1e6 / LOOKUPS as f64;
    // Computing a stamp is part of both loops: time it alone.
    let started = Instant::now();
    let mut sink = 0u8;
    for probe in 0..LOOKUPS {
        sink ^= stamp(probe).key_digest[0];
    }
    let stamp_us = started.elapsed().as_secs_f64() * 1e6 / LOOKUPS as f64;
    println!(
        "{kind:>8}: look-up of a repeat {:.2} µs, of a new key {:.2} µs (stamp {:.2} µs excluded; {sink})",
        hit_us - stamp_us,
        miss_us - stamp_us,
        stamp_us
    );
    Measured {
        sst_flushed,
        sst_compacted,
        write_keys_per_s,
    }
}

/// The alternative: the outcome's position instead of its answer.
fn measure_position(dir: &Path, keys: u64) -> Measured {
    let options = IdempotencyIndex::options(Arc::new(AtomicU64::new(0)));
    let db = rocksdb::DB::open(&options, dir.join("position")).unwrap();
    let mut write = rocksdb::WriteOptions::default();
    write.disable_wal(true);
    let started = Instant::now();
    let mut first = 0;
    while first < keys {
        let mut batch = rocksdb::WriteBatch::default();
        for i in first..keys.min(first + BATCH as u64) {
            let stamp = stamp(i);
            let mut key = vec![b'k'];
            key.extend_from_slice(&stamp.key_digest);
            let mut value = (T0 + i / 25).to_be_bytes().to_vec();
            value.extend_from_slice(&stamp.fingerprint);
            bincode::serde::encode_into_std_write(
                1_000_000_000 + i,
                &mut value,
                bincode::config::standard(),
            )
            .unwrap();
            batch.put(key, value);
        }
        db.write_opt(batch, &write).unwrap();
        first += BATCH as u64;
    }
    let write_keys_per_s = keys as f64 / started.elapsed().as_secs_f64();
    let size = |db: &rocksdb::DB| {
        db.flush().unwrap();
        db.property_int_value(rocksdb::properties::TOTAL_SST_FILES_SIZE)
            .unwrap()
            .unwrap_or(0)
    };
    let sst_flushed = size(&db);
    db.compact_range(None::<&[u8]>, None::<&[u8]>);
    let sst_compacted = size(&db);
    Measured {
        sst_flushed,
        sst_compacted,
        write_keys_per_s,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: idempotency_index <dir> [keys]");
    let keys: u64 = args.next().map_or(1_000_000, |keys| keys.parse().unwrap());
    let dir = Path::new(&dir);
    println!(
        "{keys} keys per kind, batches of {BATCH}, under {}",
        dir.display()
    );
    let mut rows = Vec::new();
    for kind in ["hold", "confirm", "position"] {
        let kind_dir = dir.join(kind);
        let _ = std::fs::remove_dir_all(&kind_dir);
        let measured = if kind == "position" {
            measure_position(&kind_dir, keys)
        } else {
            measure_index(&kind_dir, kind, keys)
        };
        rows.push((kind, measured));
        let _ = std::fs::remove_dir_all(&kind_dir);
    }
    println!("| entry | bytes/key flushed | bytes/key compacted | records/s written |");
    println!("|---|---|---|---|");
    for (kind, measured) in &rows {
        println!(
            "| {kind} | {:.1} | {:.1} | {:.0} |",
            measured.sst_flushed as f64 / keys as f64,
            measured.sst_compacted as f64 / keys as f64,
            measured.write_keys_per_s
        );
    }
    let per_day = |rate: f64, bytes: f64| rate * 86_400.0 * bytes / 1e9;
    for (kind, measured) in &rows {
        let bytes = measured.sst_compacted as f64 / keys as f64;
        println!(
            "{kind:>8}: a 24 h window costs {:.0} GB at 25,000 keyed writes/s, {:.0} GB at 3,700/s",
            per_day(25_000.0, bytes),
            per_day(3_700.0, bytes)
        );
    }
}
