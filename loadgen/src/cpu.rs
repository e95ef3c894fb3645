//! CPU time per request of each process of a run (the service, the broker, the load
//! generator itself), read from `/proc/PID/stat` before and after the measured phase.
//! A throughput figure means little without it: on one machine, a load generator that
//! burns the CPU the service needs is the limit, not the service.
//!
//! `/proc/PID/stat` fields 14 and 15 (`utime`, `stime`) count the whole thread group, in
//! clock ticks of `USER_HZ`, which the kernel's ABI fixes at 100 on every architecture
//! Linux runs on (the `sysconf(_SC_CLK_TCK)` answer), so a tick is 10 ms and a run of a
//! few seconds gives a figure to about a percent.

use serde::{Deserialize, Serialize};

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`).
const TICKS_PER_SECOND: u64 = 100;

/// A process whose CPU time a run reports: `NAME=PID` on the command line, or the load
/// generator itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    pub name: String,
    /// `None`: this process.
    pub pid: Option<u32>,
}

impl Watched {
    /// Parses `NAME=PID` (the `--cpu-of` argument).
    pub fn parse(text: &str) -> Result<Watched, String> {
        let (name, pid) = text
            .split_once('=')
            .ok_or_else(|| format!("--cpu-of takes NAME=PID, got {text:?}"))?;
        if name.is_empty() || name.len() > 64 {
            return Err(format!(
                "--cpu-of {text:?}: the name must be 1 to 64 characters"
            ));
        }
        let pid: u32 = pid
            .parse()
            .map_err(|_| format!("--cpu-of {text:?}: {pid:?} is not a process id"))?;
        Ok(Watched {
            name: name.to_string(),
            pid: Some(pid),
        })
    }

    fn stat_path(&self) -> String {
        match self.pid {
            Some(pid) => format!("/proc/{pid}/stat"),
            None => "/proc/self/stat".into(),
        }
    }

    /// CPU time (user + system) the process has used so far, in milliseconds.
    pub fn cpu_ms(&self) -> Result<u64, String> {
        let path = self.stat_path();
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("reading {path} for {:?}: {error}", self.name))?;
        parse_stat_cpu_ticks(&text)
            .map(|ticks| ticks * 1_000 / TICKS_PER_SECOND)
            .ok_or_else(|| format!("{path} for {:?} does not parse", self.name))
    }
}

/// `utime + stime` of a `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first; utime and stime are fields 14, 15.
    let mut fields = after_name.split_ascii_whitespace().skip(14 - 3);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// What one process used during the measured phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessCpu {
    pub name: String,
    /// `None`: the load generator itself.
    pub pid: Option<u32>,
    pub cpu_ms: u64,
    /// `cpu_ms` over the phase's responses, in microseconds.
    pub cpu_us_per_response: f64,
}

/// CPU readings taken at the start of the measured phase.
pub struct CpuStart {
    readings: Vec<(Watched, u64)>,
}

impl CpuStart {
    /// Reads every watched process now, and this one. A process that cannot be read is
    /// an error: a figure silently missing would read as "no CPU".
    pub fn take(watched: &[Watched]) -> Result<CpuStart, String> {
        let mut all: Vec<Watched> = watched.to_vec();
        all.push(Watched {
            name: "loadgen".into(),
            pid: None,
        });
        let readings = all
            .into_iter()
            .map(|process| process.cpu_ms().map(|ms| (process, ms)))
            .collect::<Result<_, _>>()?;
        Ok(CpuStart { readings })
    }

    /// The CPU each process used since [`CpuStart::take`], per response.
    pub fn finish(self, responses: u64) -> Result<Vec<ProcessCpu>, String> {
        self.readings
            .into_iter()
            .map(|(process, start_ms)| {
                let cpu_ms = process.cpu_ms()?.saturating_sub(start_ms);
                Ok(ProcessCpu {
                    name: process.name,
                    pid: process.pid,
                    cpu_ms,
                    cpu_us_per_response: cpu_ms as f64 * 1_000.0 / responses.max(1) as f64,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_from_after_the_name() {
        // A real line's shape; the name holds a space and a parenthesis.
        let line = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(line), Some(1234 + 567));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(parse_stat_cpu_ticks("no name here"), None);
    }

    #[test]
    fn this_process_is_read_and_burning_cpu_shows() {
        let start = CpuStart::take(&[]).unwrap();
        // Busy for at least a few ticks of CPU time (not wall time): the reading moves.
        let me = Watched {
            name: "me".into(),
            pid: None,
        };
        let before = me.cpu_ms().unwrap();
        let mut spin = 0u64;
        while me.cpu_ms().unwrap() < before + 30 {
            spin = spin.wrapping_add(std::hint::black_box(1));
        }
        let used = start.finish(10).unwrap();
        assert_eq!(used.len(), 1);
        assert_eq!(used[0].name, "loadgen");
        assert!(used[0].cpu_ms >= 30, "{used:?}");
        assert_eq!(used[0].cpu_us_per_response, used[0].cpu_ms as f64 * 100.0);
        assert!(spin > 0);
    }

    #[test]
    fn bad_arguments_and_missing_processes_are_clear_errors() {
        assert_eq!(
            Watched::parse("serve=17"),
            Ok(Watched {
                name: "serve".into(),
                pid: Some(17)
            })
        );
        for bad in ["serve", "=17", "serve=x", "serve=-1", ""] {
            assert!(Watched::parse(bad).is_err(), "{bad:?}");
        }
        // Pid 0 has no /proc entry.
        let error = CpuStart::take(&[Watched::parse("ghost=0").unwrap()])
            .err()
            .expect("a process that cannot be read is an error");
        assert!(error.contains("ghost"), "{error}");
    }
}
