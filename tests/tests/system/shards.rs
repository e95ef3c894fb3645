//! Three shards on the real Kafka broker (issue "Past one engine thread"): three `boxoffice
//! engine --shard K` primaries, a standby for shard 1, and two `boxoffice ingress`es, each
//! writing every shard's requests topic and following every shard's outcomes topic.
//!
//! Load runs on one event of every shard through both ingresses; shard 1's primary is
//! killed with SIGKILL; the other shards' loads finish while it is down (its requests get
//! 503 and are retried with their keys); then `boxoffice promote --shard 1` makes its
//! standby primary and its load finishes too. Every booking a client was told about is
//! there once, no seat is sold twice, every retry gets its first answer, and every
//! shard's state hash equals `boxoffice replay --shard K` of its own requests topic.

use super::failover::{
    kafka_bootstrap, run_load, verify_clients, Cluster, Replica, Sent, ADMIN, DEADLINE,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHARDS: u32 = 3;

fn shard_of(id: &str) -> u32 {
    let number: u64 = id.rsplit('_').next().unwrap().parse().unwrap();
    engine::shard_of(number, SHARDS)
}

/// Creates events with distinct idempotency keys until every shard has one; one event id
/// per shard, in shard order.
async fn an_event_per_shard(http: &reqwest::Client, base: &str) -> Vec<String> {
    let mut per_shard: Vec<Option<String>> = vec![None; SHARDS as usize];
    for number in 0..64 {
        if per_shard.iter().all(Option::is_some) {
            break;
        }
        let body = json!({
            "name": format!("Sharded night {number}"), "city": "Lyon", "country": "FR", "venue": "Hall",
            "starts_at": "2030-05-01T20:00:00Z", "hold_ttl_seconds": 600, "max_seats_per_order": 4,
            "categories": [{"name": "Gold", "price_cents": 5000}],
            "seating": {"sections": [{"name": "A", "rows": (1..=20).map(|row| json!({"label": row.to_string(), "seats": 20, "category": "Gold"})).collect::<Vec<_>>()}]}
        });
        let response = http
            .post(format!("{base}/v1/admin/events"))
            .bearer_auth(ADMIN)
            .header("Idempotency-Key", format!("create-{number}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "create event: {answer}");
        let id = answer["event_id"].as_str().unwrap().to_string();
        per_shard[shard_of(&id) as usize].get_or_insert(id);
    }
    per_shard
        .into_iter()
        .map(|id| id.expect("64 creations reach every shard"))
        .collect()
}

#[test]
fn three_shards_one_killed_and_promoted_while_the_others_keep_selling() {
    let Some(brokers) = kafka_bootstrap() else {
        return;
    };
    let mut cluster = Cluster::new(&brokers, "shards");
    cluster
        .env
        .push(("BOXOFFICE_SHARDS".into(), SHARDS.to_string()));
    let primaries: Vec<Replica> = (0..SHARDS)
        .map(|shard| cluster.engine_of_shard(Some(shard), "a", "primary", &[]))
        .collect();
    for primary in &primaries {
        primary.process.wait_line("node a is primary");
    }
    let standby = cluster.engine_of_shard(Some(1), "b", "standby", &[]);
    let (_first, first_base) = cluster.ingress_named("ingress-1");
    let (_second, second_base) = cluster.ingress_named("ingress-2");
    let bases = [first_base, second_base];
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let events = an_event_per_shard(&cluster.http, &bases[0]).await;
        // One load per shard; shard K's through ingress K % 2.
        let done: Vec<Arc<AtomicUsize>> = (0..SHARDS).map(|_| Arc::default()).collect();
        let loads: Vec<tokio::task::JoinHandle<Vec<Sent>>> = (0..SHARDS as usize)
            .map(|shard| {
                let (http, base, event) = (
                    cluster.http.clone(),
                    bases[shard % 2].clone(),
                    events[shard].clone(),
                );
                let done = Arc::clone(&done[shard]);
                tokio::spawn(async move {
                    run_load(http, base, event, &format!("shard{shard}"), 6, 6, done).await
                })
            })
            .collect();
        let deadline = Instant::now() + DEADLINE;
        while done[1].load(Ordering::Acquire) < 12 {
            assert!(Instant::now() < deadline, "shard 1's load stalled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut primaries = primaries;
        let killed = &mut primaries[1];
        killed.process.child.kill().unwrap(); // SIGKILL
        killed.process.child.wait().unwrap();
        let answered_at_kill = done[1].load(Ordering::Acquire);
        eprintln!("shard 1's primary killed after {answered_at_kill} answers");
        // The other shards finish their loads while shard 1 has no engine.
        let mut loads = loads.into_iter();
        let (zero, one, two) = (
            loads.next().unwrap(),
            loads.next().unwrap(),
            loads.next().unwrap(),
        );
        let sent_zero = zero.await.unwrap();
        let sent_two = two.await.unwrap();
        let total = 6 * 6 * 2;
        for (shard, sent) in [(0, &sent_zero), (2, &sent_two)] {
            assert!(
                sent.len() <= total && sent.len() >= 6 * 6,
                "shard {shard}: {} answers",
                sent.len()
            );
        }
        assert!(
            done[1].load(Ordering::Acquire) < 6 * 6 * 2,
            "shard 1 could not finish without an engine"
        );
        let promoted = cluster
            .tool(&[
                "promote",
                "--shard",
                "1",
                "--node",
                "b",
                "--wait-seconds",
                "60",
            ])
            .await;
        eprintln!("{promoted}");
        standby.process.wait_line("node b is primary");
        let sent_one = one.await.unwrap();
        for (shard, sent) in [(0, &sent_zero), (1, &sent_one), (2, &sent_two)] {
            // Read back through the other ingress than the one that wrote.
            let base = &bases[(shard + 1) % 2];
            verify_clients(&cluster.http, base, &events[shard], sent).await;
        }
        // Every shard's state equals a replay of its own requests topic.
        let replicas = [&primaries[0], &standby, &primaries[2]];
        for (shard, replica) in (0..SHARDS).zip(replicas) {
            let status = cluster.wait_settled(replica).await;
            assert_eq!(
                (status["role"].as_str(), status["shard"].as_u64()),
                (Some("primary"), Some(u64::from(shard))),
                "{status}"
            );
            let last = status["applied_offset"].as_u64().unwrap();
            let replayed = cluster.replayed_hash(Some(shard), last).await;
            assert_eq!(
                status["state_hash"].as_str().unwrap(),
                replayed,
                "shard {shard}"
            );
        }
    });
}
