//! A small in-process engine driver, for tests (feature `test-engine`): one thread reads
//! the requests log, applies each record with [`engine::Engine`] at the record's log time,
//! appends the outcomes to the outcomes log as frames (`engine::wire`), and appends a
//! `Tick` to the requests log when a timer is due and nothing else came. It is the runtime
//! in miniature, without snapshots, standby or epochs.

use engine::{Command, Engine, EngineConfig, Request};
use requestlog::{LogReader, LogWriter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const POLL_RECORDS_MAX: usize = 512;
/// Outcome frames per append: the default `append_records_max` of both logs.
const APPEND_RECORDS_MAX: usize = 4096;

pub struct TestEngine {
    engine: Arc<Mutex<Engine>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

impl TestEngine {
    /// Starts the driver. `requests_reader` should be at offset 0 (the engine starts empty).
    pub fn start(
        config: EngineConfig,
        mut requests_reader: Box<dyn LogReader>,
        requests: Arc<dyn LogWriter>,
        outcomes: Arc<dyn LogWriter>,
        tick_interval: Duration,
    ) -> TestEngine {
        let engine = Arc::new(Mutex::new(Engine::new(config)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("test-engine".into())
                .spawn(move || {
                    // A tick appended and not applied yet: no second one until it is.
                    let mut tick_pending: Option<u64> = None;
                    while !stop.load(Ordering::Acquire) {
                        let timeout = {
                            let engine = engine.lock().expect("engine lock");
                            match engine.next_due_ms() {
                                Some(due) if tick_pending.is_none() => Duration::from_millis(
                                    due.saturating_sub(wall_clock_ms())
                                        .clamp(1, tick_interval.as_millis() as u64),
                                ),
                                _ => tick_interval,
                            }
                        };
                        let records = match requests_reader.poll(POLL_RECORDS_MAX, timeout) {
                            Ok(records) => records,
                            Err(error) => {
                                panic!("test engine: reading the requests log failed: {error}")
                            }
                        };
                        let mut encoded = Vec::with_capacity(records.len());
                        {
                            let mut engine = engine.lock().expect("engine lock");
                            for record in &records {
                                let outcome = match engine::wire::decode_request(&record.payload) {
                                    Ok(request) => {
                                        engine.apply(record.offset, record.timestamp_ms, &request)
                                    }
                                    Err(reason) => engine.apply_undecodable(
                                        record.offset,
                                        record.timestamp_ms,
                                        &reason,
                                    ),
                                };
                                if tick_pending.is_some_and(|offset| record.offset >= offset) {
                                    tick_pending = None;
                                }
                                encoded.extend(engine::wire::encode_outcome_frames(&outcome));
                            }
                        }
                        // Frames of one outcome may straddle two appends: readers reassemble.
                        for chunk in encoded.chunks(APPEND_RECORDS_MAX) {
                            outcomes
                                .append(chunk.to_vec())
                                .expect("test engine: appending outcomes failed");
                        }
                        let due = engine.lock().expect("engine lock").next_due_ms();
                        if tick_pending.is_none() && due.is_some_and(|due| wall_clock_ms() >= due) {
                            let appended = requests
                                .append(vec![engine::wire::encode_request(&Request::new(
                                    Command::Tick,
                                ))])
                                .expect("test engine: appending a tick failed");
                            tick_pending = Some(appended[0].offset);
                        }
                    }
                })
                .expect("spawning the test engine")
        };
        TestEngine {
            engine,
            stop,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Runs `f` on the engine (between batches).
    pub fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        f(&self.engine.lock().expect("engine lock"))
    }

    /// Stops and joins the driver thread (it finishes the batch it is applying).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        self.stop();
    }
}
