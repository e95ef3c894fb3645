//! `boxoffice snapshot list|inspect|verify`: look at the snapshots in
//! `<data_dir>/snapshots`.
//!
//! - `list`: every stored snapshot, newest first, with its header (or why it is unreadable).
//! - `inspect [OFFSET]`: one snapshot (default: the newest) in detail, decoded.
//! - `verify [OFFSET]`: the full load check (checksums, decoding, state hash, invariants) on
//!   one snapshot or all of them; exits non-zero if any fails.

use crate::cmd_engine::{open_snapshots, ToolError};
use crate::settings::Settings;
use engine::Engine;
use snapshotter::{hex, SnapshotStore};
use std::path::Path;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum SnapshotCommand {
    /// Every stored snapshot, newest first.
    List,
    /// One snapshot in detail (default: the newest).
    Inspect { offset: Option<u64> },
    /// Checksums, decoding, state hash and invariants of one snapshot (default: all).
    Verify { offset: Option<u64> },
}

pub(crate) fn run(
    settings: &Settings,
    data_dir: &Path,
    command: SnapshotCommand,
) -> Result<(), ToolError> {
    let store = open_snapshots(settings, data_dir)?;
    match command {
        SnapshotCommand::List => list(&store),
        SnapshotCommand::Inspect { offset } => inspect(&store, settings, offset),
        SnapshotCommand::Verify { offset } => verify(&store, settings, offset),
    }
}

fn list(store: &dyn SnapshotStore) -> Result<(), ToolError> {
    let listed = store.list()?;
    if listed.is_empty() {
        println!("no snapshots");
    }
    for entry in listed {
        match entry.info {
            Ok(info) => println!(
                "offset {:>12}  created_at_ms {}  state_bytes {:>12}  state_hash {}  log {}",
                info.offset,
                info.created_at_ms,
                info.state_bytes,
                info.state_hash_hex(),
                info.log_id.as_deref().unwrap_or("(not recorded)")
            ),
            Err(reason) => println!("offset {:>12}  UNREADABLE: {reason}", entry.offset),
        }
    }
    Ok(())
}

fn newest(store: &dyn SnapshotStore) -> Result<u64, ToolError> {
    store
        .list()?
        .first()
        .map(|entry| entry.offset)
        .ok_or_else(|| ToolError::Invalid("no snapshots".into()))
}

fn inspect(
    store: &dyn SnapshotStore,
    settings: &Settings,
    offset: Option<u64>,
) -> Result<(), ToolError> {
    let offset = match offset {
        Some(offset) => offset,
        None => newest(store)?,
    };
    let snapshot = store.read(offset)?;
    println!("offset {}", snapshot.offset);
    println!("created_at_ms {}", snapshot.created_at_ms);
    println!(
        "log_id {}",
        snapshot.log_id.as_deref().unwrap_or("(not recorded)")
    );
    println!("state_hash {}", hex(&snapshot.state_hash));
    println!("state_bytes {}", snapshot.state.len());
    println!(
        "state_version {}",
        snapshot.state.first().copied().unwrap_or(0)
    );
    let state = engine::snapshot::decode_state(&snapshot.state)
        .map_err(|reason| ToolError::Invalid(format!("the state does not decode: {reason}")))?;
    for (key, value) in state.config_stamp() {
        println!("config.{key} {value}");
    }
    let config = settings.engine_config();
    if let Some(mismatch) = Engine::config_mismatch(&state, &config) {
        return Err(ToolError::Invalid(mismatch.to_string()));
    }
    let engine = Engine::from_state(config, state);
    println!("applied_offset {:?}", engine.applied_offset());
    println!("now_ms {}", engine.now_ms());
    println!("next_due_ms {:?}", engine.next_due_ms());
    println!("events {}", engine.event_count());
    println!("seats {}", engine.total_seats());
    println!("live_holds {}", engine.live_hold_count());
    println!("waiting {}", engine.waiting_count());
    println!("bookings {}", engine.booking_count());
    println!("seat_state_bytes {}", engine.seat_state_bytes());
    Ok(())
}

fn verify(
    store: &dyn SnapshotStore,
    settings: &Settings,
    offset: Option<u64>,
) -> Result<(), ToolError> {
    let offsets = match offset {
        Some(offset) => vec![offset],
        None => store.list()?.iter().map(|entry| entry.offset).collect(),
    };
    let mut failed = 0;
    for offset in &offsets {
        match snapshotter::verify(store, *offset, &settings.engine_config()) {
            Ok(loaded) => {
                loaded.engine.check_invariants();
                println!(
                    "offset {offset}: ok (state_hash {})",
                    loaded.info.state_hash_hex()
                );
            }
            Err(error) => {
                failed += 1;
                println!("offset {offset}: FAILED: {error}");
            }
        }
    }
    match failed {
        0 => Ok(()),
        _ => Err(ToolError::Invalid(format!(
            "{failed} of {} snapshots failed verification",
            offsets.len()
        ))),
    }
}
