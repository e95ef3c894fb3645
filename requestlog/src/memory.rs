//! An in-memory log with a fault plan, for simulation tests (`tests/tests/system/simulation.rs`).
//!
//! It keeps the guarantees of the real logs that the runtime relies on and breaks, on a
//! seeded plan, the ones it must survive:
//! - **Failed append**: nothing lands, the append fails (`LogError::Timeout`: the caller
//!   cannot tell whether it landed, as after a Kafka delivery timeout).
//! - **Torn append**: a prefix of the batch lands (durably) and the append fails.
//! - **Failed fsync**: the whole batch is written but not durable, and the append fails.
//!   Readers do not see it (never read before durable), and the log refuses every append
//!   (`LogError::Closed`) until it restarts ([`MemoryLog::crash`]), which drops it: RocksDB
//!   too stops writing after a failed sync until it is reopened, so an outcome that failed
//!   to sync can never turn durable behind a publisher that retried it.
//! - **Fence**: a log opened with [`MemoryLog::fencing`] refuses (`LogError::Fenced`) every
//!   writer older than the newest one, like a Kafka transactional id.
//! - **Delayed visibility**: a durable record becomes visible to readers only after some
//!   calls of [`MemoryLog::advance`] (a reader of a Kafka follower, or a slow high
//!   watermark), always as a prefix: a reader never sees a gap.
//! - **Crash**: [`MemoryLog::crash`] drops every record that is not durable.
//!
//! A speculative reader ([`MemoryLog::speculative_reader`], as the embedded log's) sees the
//! written records past the durable ones too (here: the records of a failed fsync, until the
//! crash drops them), with a [`DurableEnd`] that fails for them: the runtime that read them must
//! stop, never publish from them, and never read on past them into offsets that a restarted
//! log gives to other records.
//!
//! Nothing here blocks or sleeps: `poll` returns what is visible at once whatever its
//! timeout, because the simulator that drives it is single-threaded and nothing could
//! arrive while it waited. Time is an input too ([`MemoryLog::set_now_ms`]): records are
//! stamped with the simulator's virtual clock, made non-decreasing like the embedded log's.
//! Clones share one log.

use crate::{Appended, DurableEnd, DurableWatch, LogError, LogReader, LogRecord, LogWriter};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What goes wrong, and how often. Rates are per mille of appends; all zero is a perfect log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Appends that fail with nothing written.
    pub append_failed_per_mille: u32,
    /// Appends of which only a prefix (possibly empty) lands, durably, and that then fail.
    pub append_torn_per_mille: u32,
    /// Appends written whole whose fsync fails: not durable, not visible, and failed; the
    /// log then refuses appends until it crashes.
    pub fsync_failed_per_mille: u32,
    /// A durable append becomes visible after 0 to this many [`MemoryLog::advance`] steps.
    pub visibility_delay_steps_max: u32,
}

impl FaultPlan {
    /// No faults: every append lands, durable and visible at once.
    pub const NONE: FaultPlan = FaultPlan {
        append_failed_per_mille: 0,
        append_torn_per_mille: 0,
        fsync_failed_per_mille: 0,
        visibility_delay_steps_max: 0,
    };

    fn assert_valid(&self) {
        let total =
            self.append_failed_per_mille + self.append_torn_per_mille + self.fsync_failed_per_mille;
        assert!(total <= 1000, "fault rates add up to {total} per mille");
    }
}

/// How many faults the log injected (for a simulation's summary).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub appends_failed: u64,
    pub appends_torn: u64,
    pub fsyncs_failed: u64,
    pub writers_fenced: u64,
    pub appends_refused_after_failed_fsync: u64,
    pub records_lost_in_crashes: u64,
}

/// An in-memory, fault-injecting log (see the module's documentation). Clones share it.
#[derive(Clone)]
pub struct MemoryLog {
    inner: Arc<Mutex<Inner>>,
}

struct Stored {
    timestamp_ms: u64,
    payload: Vec<u8>,
    /// The `advance` step from which readers may see it (once it is durable).
    visible_from_step: u64,
}

struct Inner {
    log_id: String,
    /// Index = offset.
    records: Vec<Stored>,
    /// Records below this offset survive a crash.
    durable_end: u64,
    /// Records below this offset are visible to readers: a durable prefix, never shrinking.
    visible_end: u64,
    step: u64,
    now_ms: u64,
    last_timestamp_ms: u64,
    /// With fencing, the newest writer's epoch; older writers are refused.
    writer_epoch: u64,
    fencing: bool,
    /// An fsync failed: appends are refused until the next crash (restart).
    broken: bool,
    /// How many times the log crashed (restarted).
    crashes: u64,
    faults: FaultPlan,
    random: SplitMix64,
    counts: FaultCounts,
}

impl MemoryLog {
    /// A log whose writers never fence each other (the requests log: many ingress writers).
    /// `seed` decides every fault.
    pub fn new(log_id: &str, faults: FaultPlan, seed: u64) -> MemoryLog {
        faults.assert_valid();
        MemoryLog {
            inner: Arc::new(Mutex::new(Inner {
                log_id: log_id.to_string(),
                records: Vec::new(),
                durable_end: 0,
                visible_end: 0,
                step: 0,
                now_ms: 0,
                last_timestamp_ms: 0,
                writer_epoch: 0,
                fencing: false,
                broken: false,
                crashes: 0,
                faults,
                random: SplitMix64(seed),
                counts: FaultCounts::default(),
            })),
        }
    }

    /// A log where opening a writer fences every older one (the outcomes log: one
    /// transactional producer).
    pub fn fencing(log_id: &str, faults: FaultPlan, seed: u64) -> MemoryLog {
        let log = MemoryLog::new(log_id, faults, seed);
        log.lock().fencing = true;
        log
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory log poisoned")
    }

    pub fn log_id(&self) -> String {
        self.lock().log_id.clone()
    }

    /// A new writer; on a fencing log, every older writer is refused from now on.
    pub fn writer(&self) -> MemoryWriter {
        let mut inner = self.lock();
        if inner.fencing {
            inner.writer_epoch += 1;
        }
        MemoryWriter {
            log: self.clone(),
            epoch: inner.writer_epoch,
        }
    }

    /// A reader at offset 0.
    pub fn reader(&self) -> MemoryReader {
        MemoryReader {
            log: self.clone(),
            position: 0,
            speculative: None,
        }
    }

    /// A reader at offset 0 that sees every written record, durable or not, and what says
    /// which are durable (see the module's documentation).
    pub fn speculative_reader(&self) -> (MemoryReader, DurableEnd) {
        let early = Arc::new(Mutex::new(None));
        let reader = MemoryReader {
            log: self.clone(),
            position: 0,
            speculative: Some(Arc::clone(&early)),
        };
        let durable = DurableEnd::new(MemoryDurableEnd {
            log: self.clone(),
            early,
        });
        (reader, durable)
    }

    /// The virtual clock: records appended from now on are stamped with at least `now_ms`.
    pub fn set_now_ms(&self, now_ms: u64) {
        self.lock().now_ms = now_ms;
    }

    pub fn set_faults(&self, faults: FaultPlan) {
        faults.assert_valid();
        self.lock().faults = faults;
    }

    /// One step of the simulation passes: delayed records may become visible.
    pub fn advance(&self) {
        let mut inner = self.lock();
        inner.step += 1;
        inner.reveal();
    }

    /// Makes every durable record visible now (a simulation settling at its end).
    pub fn reveal_all(&self) {
        let mut inner = self.lock();
        let step = inner.step;
        let durable_end = inner.durable_end as usize;
        for stored in &mut inner.records[..durable_end] {
            stored.visible_from_step = stored.visible_from_step.min(step);
        }
        inner.reveal();
    }

    /// The log's machine crashes and restarts: every record that is not durable is gone,
    /// and appends are taken again.
    pub fn crash(&self) {
        let mut inner = self.lock();
        inner.broken = false;
        inner.crashes += 1;
        let durable_end = inner.durable_end as usize;
        let lost = inner.records.len() - durable_end;
        inner.counts.records_lost_in_crashes += lost as u64;
        inner.records.truncate(durable_end);
        debug_assert!(inner.visible_end <= inner.durable_end);
    }

    /// Every visible record, from offset 0.
    pub fn visible_records(&self) -> Vec<LogRecord> {
        let inner = self.lock();
        (0..inner.visible_end)
            .map(|offset| inner.record(offset))
            .collect()
    }

    /// An fsync failed and the log has not restarted since: it refuses appends.
    pub fn is_broken(&self) -> bool {
        self.lock().broken
    }

    pub fn fault_counts(&self) -> FaultCounts {
        self.lock().counts
    }
}

impl Inner {
    fn record(&self, offset: u64) -> LogRecord {
        let stored = &self.records[offset as usize];
        LogRecord {
            offset,
            timestamp_ms: stored.timestamp_ms,
            payload: stored.payload.clone(),
        }
    }

    /// Extends the visible prefix over durable records whose delay has passed.
    fn reveal(&mut self) {
        while self.visible_end < self.durable_end
            && self.records[self.visible_end as usize].visible_from_step <= self.step
        {
            self.visible_end += 1;
        }
    }

    fn append(&mut self, epoch: u64, payloads: Vec<Vec<u8>>) -> Result<Vec<Appended>, LogError> {
        if self.fencing && epoch < self.writer_epoch {
            self.counts.writers_fenced += 1;
            return Err(LogError::Fenced);
        }
        if self.broken {
            self.counts.appends_refused_after_failed_fsync += 1;
            return Err(LogError::Closed);
        }
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let failed = self.faults.append_failed_per_mille;
        let torn = failed + self.faults.append_torn_per_mille;
        let fsync_failed = torn + self.faults.fsync_failed_per_mille;
        let roll = (self.random.next() % 1000) as u32;
        let delay = self.random.next() % (u64::from(self.faults.visibility_delay_steps_max) + 1);
        let injected = |what| LogError::Timeout {
            operation: what,
            timeout_ms: 0,
        };
        if roll < failed {
            self.counts.appends_failed += 1;
            return Err(injected("an append (injected failure: nothing written)"));
        }
        let landing = if roll < torn {
            (self.random.next() % payloads.len() as u64) as usize
        } else {
            payloads.len()
        };
        self.last_timestamp_ms = self.last_timestamp_ms.max(self.now_ms);
        let timestamp_ms = self.last_timestamp_ms;
        let visible_from_step = self.step + delay;
        let first = self.records.len() as u64;
        self.records
            .extend(payloads.into_iter().take(landing).map(|payload| Stored {
                timestamp_ms,
                payload,
                visible_from_step,
            }));
        if roll < torn {
            // The prefix that landed is durable (one fsync covers the log's whole tail).
            self.durable_end = self.records.len() as u64;
            self.reveal();
            self.counts.appends_torn += 1;
            return Err(injected("an append (injected failure: torn)"));
        }
        if roll < fsync_failed {
            self.broken = true;
            self.counts.fsyncs_failed += 1;
            return Err(injected("an append's fsync (injected failure)"));
        }
        self.durable_end = self.records.len() as u64;
        self.reveal();
        Ok((first..self.records.len() as u64)
            .map(|offset| Appended {
                offset,
                timestamp_ms,
            })
            .collect())
    }
}

/// A writer of a [`MemoryLog`].
#[derive(Clone)]
pub struct MemoryWriter {
    log: MemoryLog,
    epoch: u64,
}

impl LogWriter for MemoryWriter {
    fn append(&self, payloads: Vec<Vec<u8>>) -> Result<Vec<Appended>, LogError> {
        self.log.lock().append(self.epoch, payloads)
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        Ok(self.log.lock().records.len() as u64)
    }
}

/// A reader of a [`MemoryLog`]: sees the visible prefix only, or, speculative, every
/// written record.
pub struct MemoryReader {
    log: MemoryLog,
    position: u64,
    /// Shared with its [`DurableEnd`]: the first record read before it was durable, and how
    /// many times the log had crashed then.
    speculative: Option<Arc<Mutex<Option<EarlyRead>>>>,
}

/// The first record a speculative reader read before it was durable.
#[derive(Clone, Copy)]
struct EarlyRead {
    offset: u64,
    crashes: u64,
}

/// Records read early that the log may never keep: its fsync failed (it is broken) or it
/// crashed since (they are gone, and their offsets go to other records).
fn lost_early(early: Option<EarlyRead>, inner: &Inner) -> Option<u64> {
    early
        .filter(|early| inner.broken || inner.crashes != early.crashes)
        .map(|early| early.offset)
}

fn lost_error(offset: u64) -> LogError {
    LogError::Journal(format!(
        "the record at offset {offset} was read before it was durable, and its fsync failed (injected)"
    ))
}

/// The [`DurableEnd`] of a speculative [`MemoryReader`].
struct MemoryDurableEnd {
    log: MemoryLog,
    early: Arc<Mutex<Option<EarlyRead>>>,
}

impl DurableWatch for MemoryDurableEnd {
    fn covers(&self, offset: u64) -> Result<bool, LogError> {
        let inner = self.log.lock();
        let early = *self.early.lock().expect("early reads poisoned");
        match lost_early(early, &inner) {
            Some(lost) if offset >= lost => Err(lost_error(lost)),
            _ => Ok(offset < inner.durable_end),
        }
    }

    /// Never waits (see the module's documentation).
    fn wait_for(&self, offset: u64, _timeout: Duration) -> Result<bool, LogError> {
        self.covers(offset)
    }
}

impl LogReader for MemoryReader {
    fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        let visible_end = self.end_offset()?;
        if offset > visible_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start_offset: 0,
                end_offset: visible_end,
            });
        }
        self.position = offset;
        Ok(())
    }

    /// Never waits (see the module's documentation).
    fn poll(&mut self, max_records: usize, _timeout: Duration) -> Result<Vec<LogRecord>, LogError> {
        let inner = self.log.lock();
        let visible_end = match &self.speculative {
            None => inner.visible_end,
            Some(early) => {
                let mut early = early.lock().expect("early reads poisoned");
                if let Some(lost) = lost_early(*early, &inner) {
                    return Err(lost_error(lost));
                }
                // Durable records only once visible (a plain reader, such as a publisher
                // re-deriving outcomes, must reach whatever this one read); past them the
                // written tail (a failed fsync's records).
                let written = match inner.visible_end == inner.durable_end {
                    true => inner.records.len() as u64,
                    false => inner.visible_end,
                };
                if early.is_none() && written > inner.durable_end && self.position < written {
                    let offset = self.position.max(inner.durable_end);
                    if offset < self.position.saturating_add(max_records as u64) {
                        *early = Some(EarlyRead {
                            offset,
                            crashes: inner.crashes,
                        });
                    }
                }
                written
            }
        };
        let until = visible_end.min(self.position.saturating_add(max_records as u64));
        let records: Vec<LogRecord> = (self.position..until)
            .map(|offset| inner.record(offset))
            .collect();
        self.position = self.position.max(until);
        Ok(records)
    }

    fn position(&self) -> u64 {
        self.position
    }

    /// The visible end; for a speculative reader the durable one (what it reads past it is
    /// not the log's yet: a failed fsync's records, which a restart drops).
    fn end_offset(&self) -> Result<u64, LogError> {
        let inner = self.log.lock();
        Ok(match self.speculative {
            None => inner.visible_end,
            Some(_) => inner.durable_end,
        })
    }
}

/// A tiny seeded generator (SplitMix64): the same seed gives the same faults everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(count: u8) -> Vec<Vec<u8>> {
        (0..count).map(|byte| vec![byte]).collect()
    }

    #[test]
    fn a_perfect_log_appends_durably_and_readers_see_it_at_once() {
        let log = MemoryLog::new("memory:test", FaultPlan::NONE, 1);
        log.set_now_ms(100);
        let appended = log.writer().append(payloads(3)).unwrap();
        assert_eq!(
            appended.iter().map(|a| a.offset).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let mut reader = log.reader();
        assert_eq!(reader.end_offset().unwrap(), 3);
        let records = reader.poll(2, Duration::ZERO).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].payload, [1]);
        assert_eq!(records[1].timestamp_ms, 100);
        log.set_now_ms(50);
        log.writer().append(payloads(1)).unwrap();
        let records = reader.poll(10, Duration::ZERO).unwrap();
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(records[1].timestamp_ms, 100, "timestamps never go back");
        log.crash();
        assert_eq!(log.visible_records().len(), 4, "everything was durable");
    }

    #[test]
    fn a_failed_fsync_is_invisible_stops_appends_and_is_lost_in_the_crash() {
        let faulty = FaultPlan {
            fsync_failed_per_mille: 1000,
            ..FaultPlan::NONE
        };
        let log = MemoryLog::new("memory:test", faulty, 1);
        let writer = log.writer();
        writer.append(Vec::new()).unwrap();
        assert!(writer.append(payloads(2)).is_err());
        assert_eq!(writer.end_offset().unwrap(), 2);
        assert_eq!(
            log.reader().end_offset().unwrap(),
            0,
            "never read before durable"
        );
        assert!(log.is_broken());
        log.set_faults(FaultPlan::NONE);
        assert!(matches!(writer.append(payloads(1)), Err(LogError::Closed)));
        log.crash();
        assert!(!log.is_broken());
        assert_eq!(writer.end_offset().unwrap(), 0);
        let appended = writer.append(payloads(1)).unwrap();
        assert_eq!(appended[0].offset, 0);
        assert_eq!(log.visible_records().len(), 1);
        assert_eq!(log.fault_counts().records_lost_in_crashes, 2);
    }

    #[test]
    fn a_speculative_reader_sees_a_failed_fsync_s_records_and_its_durable_end_fails_for_them() {
        let log = MemoryLog::new("memory:test", FaultPlan::NONE, 1);
        let writer = log.writer();
        writer.append(payloads(2)).unwrap();
        let (mut reader, durable) = log.speculative_reader();
        assert_eq!(reader.poll(10, Duration::ZERO).unwrap().len(), 2);
        assert!(durable.covers(1).unwrap() && !durable.covers(2).unwrap());
        log.set_faults(FaultPlan {
            fsync_failed_per_mille: 1000,
            ..FaultPlan::NONE
        });
        assert!(writer.append(payloads(3)).is_err());
        assert_eq!(reader.end_offset().unwrap(), 2, "the durable end");
        let early = reader.poll(10, Duration::ZERO).unwrap();
        assert_eq!(
            early.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(durable.covers(1).unwrap(), "the durable ones stay so");
        assert!(durable
            .covers(2)
            .unwrap_err()
            .to_string()
            .contains("injected"));
        // The log restarts without them and gives their offsets to other records: the
        // reader does not read on, and its durable end still fails for them.
        log.set_faults(FaultPlan::NONE);
        log.crash();
        writer.append(payloads(4)).unwrap();
        assert!(durable.covers(2).is_err());
        assert!(reader.poll(10, Duration::ZERO).is_err());
        // A reader that read nothing early is not concerned by a crash.
        let (mut fresh, fresh_durable) = log.speculative_reader();
        assert_eq!(fresh.poll(10, Duration::ZERO).unwrap().len(), 6);
        log.crash();
        assert!(fresh_durable.covers(5).unwrap());
        assert!(fresh.poll(10, Duration::ZERO).unwrap().is_empty());
    }

    #[test]
    fn a_torn_append_lands_a_prefix_and_a_failed_one_nothing() {
        let torn = FaultPlan {
            append_torn_per_mille: 1000,
            ..FaultPlan::NONE
        };
        let log = MemoryLog::new("memory:test", torn, 7);
        let mut landed = 0;
        for _ in 0..20 {
            assert!(log.writer().append(payloads(5)).is_err());
            let now = log.visible_records().len();
            assert!(now - landed < 5, "only a strict prefix lands");
            landed = now;
        }
        assert!(landed > 0);
        log.set_faults(FaultPlan {
            append_failed_per_mille: 1000,
            ..FaultPlan::NONE
        });
        assert!(log.writer().append(payloads(5)).is_err());
        assert_eq!(log.visible_records().len(), landed);
    }

    #[test]
    fn a_newer_writer_fences_older_ones_on_a_fencing_log_only() {
        let log = MemoryLog::fencing("memory:outcomes", FaultPlan::NONE, 1);
        let old = log.writer();
        old.append(payloads(1)).unwrap();
        let new = log.writer();
        assert!(matches!(old.append(payloads(1)), Err(LogError::Fenced)));
        new.append(payloads(1)).unwrap();
        let shared = MemoryLog::new("memory:requests", FaultPlan::NONE, 1);
        let (first, second) = (shared.writer(), shared.writer());
        first.append(payloads(1)).unwrap();
        second.append(payloads(1)).unwrap();
        first.append(payloads(1)).unwrap();
    }

    #[test]
    #[should_panic(expected = "fault rates add up to 1200 per mille")]
    fn a_fault_plan_over_every_append_is_refused() {
        let impossible = FaultPlan {
            append_failed_per_mille: 600,
            append_torn_per_mille: 600,
            ..FaultPlan::NONE
        };
        MemoryLog::new("memory:test", impossible, 1);
    }

    #[test]
    fn delayed_records_become_visible_in_order_after_steps() {
        let delayed = FaultPlan {
            visibility_delay_steps_max: 5,
            ..FaultPlan::NONE
        };
        let log = MemoryLog::new("memory:test", delayed, 3);
        for _ in 0..10 {
            log.writer().append(payloads(1)).unwrap();
        }
        let mut seen = Vec::new();
        let mut reader = log.reader();
        for _ in 0..6 {
            seen.extend(reader.poll(100, Duration::ZERO).unwrap());
            log.advance();
        }
        seen.extend(reader.poll(100, Duration::ZERO).unwrap());
        let offsets: Vec<u64> = seen.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, (0..10).collect::<Vec<_>>());
        assert!(
            matches!(reader.seek(11), Err(LogError::OffsetOutOfRange { .. })),
            "bad input: a seek past the end is refused"
        );
    }
}
