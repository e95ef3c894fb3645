//! The one error type of the log boundary.

/// Everything that can go wrong when appending to or reading from a log.
///
/// Callers (ingress, the engine's reader thread) convert this at their own edge; the variants are
/// precise so that they can tell a request to retry (`Timeout`), to give up (`PayloadTooLarge`),
/// or to stop the process (`Corrupt`, `Fenced`).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// One payload is larger than the configured `payload_size_max_bytes`.
    #[error("payload {index} of the append is {size_bytes} bytes, over the limit of {size_max_bytes} bytes")]
    PayloadTooLarge {
        index: usize,
        size_bytes: usize,
        size_max_bytes: usize,
    },

    /// One append carries more records than `append_records_max`.
    #[error("append of {count} records is over the limit of {count_max} records")]
    TooManyRecords { count: usize, count_max: usize },

    /// A stored record failed its checksum, had an unknown format, or is missing from the
    /// otherwise dense sequence of offsets.
    #[error("record at offset {offset} is corrupt: {reason}")]
    Corrupt { offset: u64, reason: &'static str },

    /// `seek` to an offset the log does not have (past its end, or already deleted).
    #[error("offset {offset} is outside the log [{start_offset}, {end_offset}]")]
    OffsetOutOfRange {
        offset: u64,
        start_offset: u64,
        end_offset: u64,
    },

    /// Another producer with the same `transactional.id` has started: this one is a zombie and
    /// must stop writing. Never retried.
    #[error("this writer was fenced by a newer writer with the same transactional id")]
    Fenced,

    /// The log was shut down (or its writer thread died) before the request was answered.
    #[error("the log is closed")]
    Closed,

    /// An operation did not finish within its deadline.
    #[error("timed out after {timeout_ms} ms waiting for {operation}")]
    Timeout {
        operation: &'static str,
        timeout_ms: u64,
    },

    /// The Kafka topic exists but cannot hold this log (for example it has several partitions),
    /// or could not be created.
    #[error("topic {topic}: {reason}")]
    Topic { topic: String, reason: String },

    /// The Kafka topic exists, but one of its settings (or the options it is opened with)
    /// cannot keep a log safe. `setting` is the topic's configuration key (`cleanup.policy`,
    /// `retention.ms`, ...) or `partitions` / `replication factor`.
    #[error("topic {topic}: {setting} is {found}, but the log needs {required}")]
    TopicSetting {
        topic: String,
        setting: &'static str,
        found: String,
        required: String,
    },

    /// What must be durable before a commit ([`crate::BeforeCommit`]) could not be made so:
    /// the commit was refused whole, nothing of it written. Later appends are tried again.
    #[error("cannot commit: {0}")]
    BeforeCommit(String),

    /// The embedded log's journal (`journal.rs`) could not be written or synced. As after
    /// a failed RocksDB write, the embedded writer refuses further appends.
    #[error("journal: {0}")]
    Journal(String),

    /// The embedded log's record files (`segments.rs`) could not be read, written or
    /// synced. As after a failed RocksDB write, the embedded writer refuses further appends.
    #[error("log files: {0}")]
    Files(String),

    /// RocksDB failed. After a failed write the embedded writer refuses further appends.
    #[error("storage: {0}")]
    Storage(#[from] rocksdb::Error),

    /// Kafka (librdkafka) failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// The one check of an append against a log's limits (`append_records_max`,
/// `payload_size_max_bytes`), before anything is written: the embedded and the Kafka
/// writers refuse the same appends with the same errors.
pub(crate) fn check_append_limits(
    payloads: &[Vec<u8>],
    append_records_max: usize,
    payload_size_max_bytes: usize,
) -> Result<(), LogError> {
    if payloads.len() > append_records_max {
        return Err(LogError::TooManyRecords {
            count: payloads.len(),
            count_max: append_records_max,
        });
    }
    match payloads
        .iter()
        .position(|payload| payload.len() > payload_size_max_bytes)
    {
        Some(index) => Err(LogError::PayloadTooLarge {
            index,
            size_bytes: payloads[index].len(),
            size_max_bytes: payload_size_max_bytes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An append at each limit passes; one record or one byte over is refused, naming
    /// the first payload over the size limit.
    #[test]
    fn appends_over_a_limit_are_refused_with_what_was_over() {
        let check = |payloads: &[Vec<u8>]| check_append_limits(payloads, 3, 4);
        assert!(check(&[]).is_ok());
        assert!(check(&[vec![0; 4], vec![0; 4], vec![]]).is_ok());
        assert!(matches!(
            check(&[vec![], vec![], vec![], vec![]]),
            Err(LogError::TooManyRecords {
                count: 4,
                count_max: 3
            })
        ));
        assert!(matches!(
            check(&[vec![0; 4], vec![0; 5], vec![0; 6]]),
            Err(LogError::PayloadTooLarge {
                index: 1,
                size_bytes: 5,
                size_max_bytes: 4
            })
        ));
    }
}
