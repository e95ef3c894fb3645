//! Costs of a full idempotency window (2,000,000 keys) without the runtime: applying the
//! keyed requests, `State::clone`, and a snapshot's encoding and decoding.
//!
//! ```text
//! cargo run --release -p engine --example window_bench [keys]
//! ```

use engine::{snapshot, Command, Engine, EngineConfig, HoldId, Request};
use std::time::Instant;

fn main() {
    let keys: u64 = std::env::args()
        .nth(1)
        .map_or(2_000_000, |keys| keys.parse().unwrap());
    let mut engine = Engine::new(EngineConfig::default());
    let started = Instant::now();
    for index in 0..keys {
        let request = Request::with_key(
            Command::ReleaseHold {
                user: format!("user{}", index % 100_000).into(),
                hold: HoldId(1 << 40),
            },
            format!("key-{index}"),
        );
        engine.apply(index, 1_000 + index / 10_000, &request);
    }
    let apply_s = started.elapsed().as_secs_f64();
    let mut clones = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let copy = engine.state().clone();
        clones.push(started.elapsed().as_micros());
        drop(copy);
    }
    clones.sort_unstable();
    let started = Instant::now();
    let encoded = snapshot::encode_state(engine.state());
    let encode_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let decoded = snapshot::decode_state(&encoded).unwrap();
    let decode_ms = started.elapsed().as_millis();
    assert!(&decoded == engine.state());
    println!(
        "{keys} keys: apply {:.0} ns/keyed request; State::clone us (7 runs, sorted) {clones:?}; encode {encode_ms} ms, decode {decode_ms} ms, {:.1} MB; state hash {}",
        apply_s * 1e9 / keys as f64,
        encoded.len() as f64 / 1e6,
        &engine.state_hash_hex()[..16]
    );
}
