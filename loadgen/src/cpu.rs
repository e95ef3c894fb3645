//! CPU time per request of each process of a run (the service, the broker, the load
//! generator itself), read from `/proc/PID/stat` before and after the measured phase.
//! A throughput figure means little without it: on one machine, a load generator that
//! burns the CPU the service needs is the limit, not the service.
//!
//! `/proc/PID/stat` fields 14 and 15 (`utime`, `stime`) count the whole thread group, in
//! clock ticks of `USER_HZ`, which the kernel's ABI fixes at 100 on every architecture
//! Linux runs on (the `sysconf(_SC_CLK_TCK)` answer), so a tick is 10 ms and a run of a
//! few seconds gives a figure to about a percent.
//!
//! Each process's figure is also split by thread name (`/proc/PID/task/TID/stat`, the
//! same fields for one thread; threads of one name summed, e.g. every HTTP worker), so a
//! run says where a response's CPU goes: which stage of a pipeline of threads costs what.
//! A thread that ended during the phase took its time with it: what the process used
//! beyond its living threads is reported as `(ended)` (that, and the few ticks by which
//! the kernel's rounding of each thread's figure differs from the process's).

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

    /// The process's `/proc` directory.
    fn proc_dir(&self) -> String {
        match self.pid {
            Some(pid) => format!("/proc/{pid}"),
            None => "/proc/self".into(),
        }
    }

    /// CPU ticks of each living thread: (thread id, name, ticks). A thread that ends
    /// while the directory is read is skipped.
    fn thread_ticks(&self) -> Result<Vec<(u32, String, u64)>, String> {
        let dir = format!("{}/task", self.proc_dir());
        let entries = std::fs::read_dir(&dir)
            .map_err(|error| format!("reading {dir} for {:?}: {error}", self.name))?;
        let mut threads = Vec::new();
        for entry in entries.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|tid| tid.parse().ok()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue; // ended meanwhile
            };
            if let (Some(name), Some(ticks)) = (parse_stat_name(&text), parse_stat_cpu_ticks(&text))
            {
                threads.push((tid, name.to_string(), ticks));
            }
        }
        Ok(threads)
    }

    /// CPU time (user + system) the process has used so far, in clock ticks.
    fn cpu_ticks(&self) -> Result<u64, String> {
        let path = format!("{}/stat", self.proc_dir());
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("reading {path} for {:?}: {error}", self.name))?;
        parse_stat_cpu_ticks(&text)
            .ok_or_else(|| format!("{path} for {:?} does not parse", self.name))
    }

    /// CPU time (user + system) the process has used so far, in milliseconds.
    pub fn cpu_ms(&self) -> Result<u64, String> {
        self.cpu_ticks().map(ticks_ms)
    }
}

fn ticks_ms(ticks: u64) -> u64 {
    ticks * 1_000 / TICKS_PER_SECOND
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

/// The thread name (`comm`, field 2) of a `/proc/.../stat` line: between the first `(`
/// and the last `)`.
pub fn parse_stat_name(stat: &str) -> Option<&str> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    (open < close).then(|| &stat[open + 1..close])
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
    /// The same split by thread name, most first (threads of one name summed; `(ended)`:
    /// what threads that ended during the phase used). Empty in reports from before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<ThreadCpu>,
}

/// What the threads of one name in a process used during the measured phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    pub name: String,
    pub cpu_ms: u64,
    pub cpu_us_per_response: f64,
}

/// The name under which [`ProcessCpu::threads`] reports what ended threads used.
pub const ENDED_THREADS: &str = "(ended)";

/// CPU readings taken at the start of the measured phase.
pub struct CpuStart {
    /// Each process, its CPU ticks and its living threads' ticks by thread id.
    readings: Vec<(Watched, u64, std::collections::BTreeMap<u32, u64>)>,
}

/// The per-thread-name split of a process's phase: ticks used since `start` by each
/// thread living at the end (a thread born during the phase counts from zero), summed by
/// name, plus what the process used beyond them as [`ENDED_THREADS`]; most first.
fn split_by_thread(
    start: &std::collections::BTreeMap<u32, u64>,
    end: &[(u32, String, u64)],
    process_ticks: u64,
) -> Vec<(String, u64)> {
    let mut by_name = std::collections::BTreeMap::<&str, u64>::new();
    for (tid, name, ticks) in end {
        let used = ticks.saturating_sub(start.get(tid).copied().unwrap_or(0));
        *by_name.entry(name).or_default() += used;
    }
    let living: u64 = by_name.values().sum();
    let mut split: Vec<(String, u64)> = by_name
        .into_iter()
        .filter(|(_, ticks)| *ticks > 0)
        .map(|(name, ticks)| (name.to_string(), ticks))
        .collect();
    if process_ticks > living {
        split.push((ENDED_THREADS.to_string(), process_ticks - living));
    }
    // Stable: equal figures stay in name order.
    split.sort_by_key(|(_, ticks)| std::cmp::Reverse(*ticks));
    split
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
            .map(|process| {
                let threads = process
                    .thread_ticks()?
                    .into_iter()
                    .map(|(tid, _, ticks)| (tid, ticks))
                    .collect();
                process.cpu_ticks().map(|ticks| (process, ticks, threads))
            })
            .collect::<Result<_, _>>()?;
        Ok(CpuStart { readings })
    }

    /// The CPU each process used since [`CpuStart::take`], per response, and its split by
    /// thread name.
    pub fn finish(self, responses: u64) -> Result<Vec<ProcessCpu>, String> {
        let per_response = |ms: u64| ms as f64 * 1_000.0 / responses.max(1) as f64;
        self.readings
            .into_iter()
            .map(|(process, start_ticks, start_threads)| {
                let end_threads = process.thread_ticks()?;
                let ticks = process.cpu_ticks()?.saturating_sub(start_ticks);
                let cpu_ms = ticks_ms(ticks);
                let threads = split_by_thread(&start_threads, &end_threads, ticks)
                    .into_iter()
                    .map(|(name, ticks)| {
                        let cpu_ms = ticks_ms(ticks);
                        ThreadCpu {
                            name,
                            cpu_ms,
                            cpu_us_per_response: per_response(cpu_ms),
                        }
                    })
                    .collect();
                Ok(ProcessCpu {
                    name: process.name,
                    pid: process.pid,
                    cpu_ms,
                    cpu_us_per_response: per_response(cpu_ms),
                    threads,
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
    fn thread_names_parse_between_the_first_and_last_parenthesis() {
        assert_eq!(
            parse_stat_name("4242 (tokio (rt) x) S 1 4242"),
            Some("tokio (rt) x")
        );
        assert_eq!(parse_stat_name("4242 (http) S"), Some("http"));
        assert_eq!(parse_stat_name("4242 )x( S"), None);
        assert_eq!(parse_stat_name("no name here"), None);
    }

    #[test]
    fn a_phase_splits_by_thread_name_with_what_ended_threads_used() {
        // Threads 1 and 2 are both "http"; 3 was born during the phase; 4 ended during
        // it (gone at the end); the process used 100 ticks in all.
        let start = [(1, 10), (2, 20), (4, 5)].into_iter().collect();
        let end = vec![
            (1, "http".to_string(), 40),
            (2, "http".to_string(), 30),
            (3, "writer".to_string(), 25),
            (5, "idle".to_string(), 0),
        ];
        assert_eq!(
            split_by_thread(&start, &end, 100),
            vec![
                ("http".to_string(), 40),
                (ENDED_THREADS.to_string(), 35),
                ("writer".to_string(), 25),
            ]
        );
        // Nothing beyond the living threads: no `(ended)` line.
        assert_eq!(
            split_by_thread(&start, &end, 65),
            vec![("http".to_string(), 40), ("writer".to_string(), 25)]
        );
    }

    /// Spins until the calling thread itself has used `ms` more milliseconds of CPU time
    /// (not wall time; other tests' threads do not count), so a reading moves by a few
    /// ticks.
    fn burn_cpu_ms(ms: u64) -> u64 {
        let mine = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            ticks_ms(parse_stat_cpu_ticks(&stat).unwrap())
        };
        let before = mine();
        let mut spin = 0u64;
        while mine() < before + ms {
            spin = spin.wrapping_add(std::hint::black_box(1));
        }
        spin
    }

    #[test]
    fn a_busy_thread_of_this_process_shows_under_its_name() {
        let start = CpuStart::take(&[]).unwrap();
        let (burnt, burnt_seen) = std::sync::mpsc::channel();
        let (may_end, end) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::Builder::new()
            .name("cpu-test-busy".into())
            .spawn(move || {
                let spin = burn_cpu_ms(30);
                burnt.send(()).unwrap();
                // Alive until read: an ended thread's time leaves its name.
                end.recv().unwrap();
                spin
            })
            .unwrap();
        burnt_seen.recv().unwrap();
        let used = start.finish(10).unwrap();
        may_end.send(()).unwrap();
        assert!(busy.join().unwrap() > 0);
        let threads = &used[0].threads;
        // Every tick the process used is under some name (threads' own figures are rounded
        // apart, so they may add up to a tick more than the process's).
        let named: u64 = threads.iter().map(|thread| thread.cpu_ms).sum();
        assert!(named >= used[0].cpu_ms, "{threads:?} {used:?}");
        let busy = threads
            .iter()
            .find(|thread| thread.name == "cpu-test-busy")
            .unwrap_or_else(|| panic!("{threads:?}"));
        assert!(busy.cpu_ms >= 30, "{threads:?}");
    }

    #[test]
    fn this_process_is_read_and_burning_cpu_shows() {
        let start = CpuStart::take(&[]).unwrap();
        // Busy for at least a few ticks of CPU time (not wall time): the reading moves.
        let spin = burn_cpu_ms(30);
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
