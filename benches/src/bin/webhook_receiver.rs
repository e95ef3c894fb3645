//! A webhook receiver for the delivery benchmark (`benches/http-hold-confirm/run.sh`, sides
//! `hooklive` and `hookdead`): `webhook_receiver ADDRESS live|dead COUNT_FILE`.
//!
//! `live` answers every POST 204 at once and counts it; `dead` accepts connections and never
//! answers (an endpoint that hangs). It prints `listening on http://ADDR` and writes the
//! count of deliveries received so far to COUNT_FILE every 100 ms (the script reads it).
//! Signatures are not checked here: the tests check them (`effects/tests/deliveries.rs`).

use axum::routing::post;
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, address, mode, count_file] = &args[..] else {
        eprintln!("usage: webhook_receiver ADDRESS live|dead COUNT_FILE");
        std::process::exit(2);
    };
    let received = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind(address.as_str())
        .await
        .expect("the receiver's address is free");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("bound")
    );
    let writer = {
        let (received, count_file) = (Arc::clone(&received), count_file.clone());
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let count = received.load(Ordering::Relaxed);
                let _ = std::fs::write(&count_file, format!("{count}\n"));
            }
        }
    };
    tokio::spawn(writer);
    match mode.as_str() {
        "live" => {
            let router = Router::new().route(
                "/hook",
                post(move || {
                    let received = Arc::clone(&received);
                    async move {
                        received.fetch_add(1, Ordering::Relaxed);
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            );
            axum::serve(listener, router).await.expect("serving");
        }
        "dead" => loop {
            // Accepted and held open, never read nor answered.
            let (socket, _) = listener.accept().await.expect("accepting");
            tokio::spawn(async move {
                let _socket = socket;
                std::future::pending::<()>().await;
            });
        },
        other => {
            eprintln!("mode {other:?}: live or dead");
            std::process::exit(2);
        }
    }
}
