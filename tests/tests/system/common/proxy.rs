//! A TCP proxy that can be paused, to cut one process off the Kafka broker without a hook in
//! the process: paused, it holds every byte in both directions and keeps every connection
//! open (to the client the broker is merely silent), and accepts new connections whose bytes
//! it holds too; resumed, it forwards what it held, in order, and goes on.
//!
//! The broker of `scripts/kafka.sh` has a second listener for it: `KAFKA_PROXIED_BROKER`,
//! which advertises `KAFKA_PROXIED_BOOTSTRAP`. The test runs the proxy on the advertised
//! address, forwarding to the listener, and gives the process the proxy as its bootstrap;
//! librdkafka connects to the addresses the broker advertises, so every connection of that
//! process goes through the proxy.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The broker's second listener and the address it advertises (`scripts/kafka.sh`).
#[derive(Clone, Debug)]
pub struct ProxiedListener {
    /// Where the broker listens: the proxy forwards here.
    pub broker: String,
    /// What the broker advertises on that listener: the proxy listens here, and a client
    /// cut off by it takes it as its bootstrap.
    pub bootstrap: String,
}

/// The broker's proxied listener from `KAFKA_PROXIED_BROKER` and `KAFKA_PROXIED_BOOTSTRAP`
/// (`scripts/test.sh` exports both), as `requestlog::test_kafka_bootstrap` finds the
/// broker: `None` with a note on a developer's machine without them; in CI (`CI=true`) a
/// missing one fails the test, never skipped there.
pub fn kafka_proxied_listener(what: &str) -> Option<ProxiedListener> {
    let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    match (
        variable("KAFKA_PROXIED_BROKER"),
        variable("KAFKA_PROXIED_BOOTSTRAP"),
    ) {
        (Some(broker), Some(bootstrap)) => Some(ProxiedListener { broker, bootstrap }),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "KAFKA_PROXIED_BROKER or KAFKA_PROXIED_BOOTSTRAP is not set: CI must run {what} against a broker with its proxied listener (scripts/kafka.sh start; scripts/test.sh exports them)"
        ),
        _ => {
            eprintln!(
                "note: KAFKA_PROXIED_BROKER / KAFKA_PROXIED_BOOTSTRAP are not set; {what} not run (scripts/kafka.sh start prints them)"
            );
            None
        }
    }
}

/// A running proxy; stops (closing every connection) when dropped.
pub struct PausableProxy {
    address: SocketAddr,
    paused: watch::Sender<bool>,
    /// The accept loop, which owns the connections' tasks: aborting it drops them all.
    accepting: tokio::task::JoinHandle<()>,
}

impl PausableProxy {
    /// Listens on `listen` and forwards each connection to `target`, running (not paused).
    /// `listen` is a fixed port (the one the broker advertises), which another run of the
    /// same test may still hold: binding is retried until `deadline` has passed.
    pub async fn start(listen: &str, target: &str, deadline: Duration) -> PausableProxy {
        let began = Instant::now();
        let listener = loop {
            match TcpListener::bind(listen).await {
                Ok(listener) => break listener,
                Err(error) => {
                    assert!(
                        began.elapsed() < deadline,
                        "cannot listen on {listen} for the proxy to {target}: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let address = listener.local_addr().unwrap();
        let (paused, running) = watch::channel(false);
        let target = target.to_string();
        let accepting = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(forward(client, target.clone(), running.clone()));
                // Reap the finished ones so the set does not grow with every reconnection.
                while connections.try_join_next().is_some() {}
            }
        });
        PausableProxy {
            address,
            paused,
            accepting,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// From now on no byte passes, either way, until [`PausableProxy::resume`].
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Forwards what was held, then everything as it comes.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

impl Drop for PausableProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// One client connection to `target`, both directions, until either side closes.
async fn forward(client: TcpStream, target: String, running: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(&target).await else {
        // The client sees its connection closed, as with a broker that is down.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, running.clone()),
        pipe(server_read, client_write, running),
    );
}

/// Copies `from` to `to`, holding each chunk read while paused. Holding one chunk stops the
/// reading, so TCP's flow control holds the rest in the sockets' buffers and the sender's.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut running: watch::Receiver<bool>) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if running.wait_for(|paused| !paused).await.is_err() {
            break;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    // A close is passed on only when running too.
    if running.wait_for(|paused| !paused).await.is_ok() {
        let _ = to.shutdown().await;
    }
}
