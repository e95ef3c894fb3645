//! Log append throughput and latency, embedded or Kafka.
//!
//! `cargo run --release -p runtime --example append_bench -- <dir> <appenders> <records per append> <seconds>`
//!
//! `<dir>` may be `kafka://HOST:PORT/TOPIC` for the Kafka log (idempotent producer,
//! acks=all: an append returns once every record is acknowledged).
//!
//! Each appender thread appends batches of 100-byte payloads in a loop; group commit
//! batches concurrent appends into one fsync. Prints records/s and append latency.

use requestlog::{EmbeddedLog, EmbeddedOptions, KafkaLog, KafkaOptions, LogWriter};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, appenders, batch, seconds] = args.as_slice() else {
        eprintln!("usage: append_bench <dir> <appenders> <records per append> <seconds>");
        std::process::exit(2);
    };
    let (appenders, batch, seconds): (usize, usize, u64) = (
        appenders.parse().unwrap(),
        batch.parse().unwrap(),
        seconds.parse().unwrap(),
    );
    let writer: Arc<dyn LogWriter> = match dir.strip_prefix("kafka://") {
        Some(target) => {
            let (brokers, topic) = target.split_once('/').expect("kafka://HOST:PORT/TOPIC");
            Arc::new(
                KafkaLog::open(KafkaOptions::new(brokers, topic))
                    .unwrap()
                    .writer()
                    .unwrap(),
            )
        }
        None => Arc::new(
            EmbeddedLog::open(dir, EmbeddedOptions::default())
                .unwrap()
                .writer(),
        ),
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let histograms: Vec<hdrhistogram::Histogram<u64>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..appenders)
            .map(|_| {
                let writer = Arc::clone(&writer);
                scope.spawn(move || {
                    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
                    while Instant::now() < deadline {
                        let payloads = vec![vec![7u8; 100]; batch];
                        let sent = Instant::now();
                        writer.append(payloads).unwrap();
                        histogram.record(sent.elapsed().as_micros() as u64).unwrap();
                    }
                    histogram
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for histogram in &histograms {
        all.add(histogram).unwrap();
    }
    let records = all.len() * batch as u64;
    println!(
        "appenders {appenders} batch {batch}: {:.0} records/s, {:.0} appends/s; append latency us p50 {} p99 {} p99.9 {} max {}",
        records as f64 / elapsed,
        all.len() as f64 / elapsed,
        all.value_at_quantile(0.5),
        all.value_at_quantile(0.99),
        all.value_at_quantile(0.999),
        all.max()
    );
}
