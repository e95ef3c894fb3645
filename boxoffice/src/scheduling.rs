//! Which threads of a serving process may preempt which (Linux's scheduling policies).
//!
//! Under load every group commit wakes a chain of threads: the requests log's writer, the
//! engine's reader, the engine, the publisher, the outcome follower, the effects worker.
//! Woken under the default policy (`SCHED_OTHER`), each may preempt whatever runs on its
//! CPU: the HTTP thread in the middle of an answer, or the writer between telling the
//! engine's reader about a batch and the `fdatasync` that makes the batch durable. Under
//! `SCHED_BATCH` a woken thread does not preempt a running one: it runs at once on an idle
//! CPU, or when the running thread blocks or its slice ends; its share of the CPU (its
//! nice value) is unchanged.
//!
//! So a process that answers HTTP (`serve`, `ingress`, `engine`) runs every thread under
//! `SCHED_BATCH` except its HTTP runtime's workers, which answer clients: [`background`]
//! on the main thread before it starts any other (a thread inherits its creator's policy,
//! so RocksDB's, librdkafka's and the pipeline's threads all follow), and [`answering`] in
//! the HTTP runtimes' `on_thread_start`. `http.background_threads_batch = false` keeps the
//! default policy everywhere. Measured: BENCHMARKS.md, session 48 (`serve` under 64
//! hold + confirm clients: about 13% less CPU a response and 8-15% more requests a second).
//!
//! A thread whose nice value is not 0 (a process started with `nice`) is left as it is:
//! the policy is set with the thread's nice value kept, which the library used here
//! expresses only for 0.
//!
//! The same first call confines the process to the CPUs `http.cpus` names, if any
//! ([`run_on`]): one CPU keeps the HTTP thread and the pipeline together, so a hand-off
//! wakes a thread on its own CPU rather than another one's (on this project's 2-vCPU VM a
//! wake across vCPUs cost about 8 times one on the same vCPU: BENCHMARKS.md, sessions 47
//! and 52).
//!
//! It also turns transparent huge pages off for the process
//! ([`without_transparent_huge_pages`]) unless `http.transparent_huge_pages` is on: a
//! huge page's zeroing at its first touch paused whichever pipeline thread grew a table.

/// What a serving command (`serve`, `ingress`, `engine`) calls first on its main thread,
/// before it starts any other (they inherit its CPUs and policy): [`run_on`] with
/// `http.cpus` when it names any, [`background`] unless `http.background_threads_batch`
/// is off. Fails when the process may not run on the CPUs named.
pub(crate) fn serving_process(settings: &crate::settings::Settings) -> Result<(), String> {
    if !settings.http.cpus.is_empty() {
        run_on(&settings.http.cpus)?;
    }
    if settings.http.background_threads_batch {
        background();
    }
    if !settings.http.transparent_huge_pages {
        without_transparent_huge_pages();
    }
    Ok(())
}

/// The calling thread, and every thread it starts from now on, on `cpus` only
/// (`sched_setaffinity`). Fails, naming the setting and the CPUs it may use, when any of
/// them is one the process may not use (offline, absent, or outside its cpuset): the
/// kernel would take the others silently, and the operator asked for those.
#[cfg(target_os = "linux")]
pub(crate) fn run_on(cpus: &[usize]) -> Result<(), String> {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
    let allowed = sched_getaffinity(None).map_err(|error| {
        format!("http.cpus: cannot read the CPUs this process may use: {error}")
    })?;
    let refused: Vec<usize> = cpus
        .iter()
        .copied()
        .filter(|&cpu| cpu >= CpuSet::MAX_CPU || !allowed.is_set(cpu))
        .collect();
    let may_use = || {
        let may_use: Vec<String> = (0..CpuSet::MAX_CPU)
            .filter(|&cpu| allowed.is_set(cpu))
            .map(|cpu| cpu.to_string())
            .collect();
        may_use.join(",")
    };
    if !refused.is_empty() {
        return Err(format!(
            "http.cpus = {cpus:?}: this process may not run on {refused:?}; the CPUs it may use: {}",
            may_use()
        ));
    }
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    sched_setaffinity(None, &set).map_err(|error| {
        format!(
            "http.cpus = {cpus:?}: this process cannot run there ({error}); the CPUs it may use: {}",
            may_use()
        )
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn run_on(cpus: &[usize]) -> Result<(), String> {
    Err(format!(
        "http.cpus = {cpus:?}: CPU affinity is set on Linux only"
    ))
}

/// No transparent huge pages for this process from now on (`prctl(PR_SET_THP_DISABLE)`,
/// kept across `fork` and `exec`), whatever the kernel's mode and whoever asks
/// (`MADV_HUGEPAGE`, as mimalloc does for its arenas). A huge page is zeroed whole by the
/// thread whose first touch faults it in: 2 MB at once on the engine's, the follower's or
/// the writer's thread as their tables grow, where a 4-KiB page costs a five-hundredth of
/// that. Redis turns them off for the same reason. Where the kernel refuses, its setting
/// applies and a warning says so.
pub(crate) fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(%error, "cannot turn transparent huge pages off; the kernel's setting applies");
    }
}

/// The calling thread, and every thread it starts from now on, under `SCHED_BATCH`.
pub(crate) fn background() {
    set(Policy::Batch);
}

/// The calling thread under the default policy (`SCHED_OTHER`): a thread that answers
/// requests, started by a thread under [`background`]'s policy.
pub(crate) fn answering() {
    set(Policy::Default);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Default,
    Batch,
}

#[cfg(target_os = "linux")]
fn set(policy: Policy) {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::{ThreadPriority, ThreadPriorityOsValue};
    // `setpriority` on a thread's own id (0): its nice value, which must stay.
    match rustix::process::getpriority_process(None) {
        Ok(0) => {}
        Ok(nice) => {
            tracing::info!(
                nice,
                ?policy,
                "a thread with a nice value other than 0 keeps its scheduling policy"
            );
            return;
        }
        Err(error) => {
            tracing::warn!(%error, ?policy, "cannot read the thread's nice value; its scheduling policy is unchanged");
            return;
        }
    }
    let normal = match policy {
        Policy::Default => NormalThreadSchedulePolicy::Other,
        Policy::Batch => NormalThreadSchedulePolicy::Batch,
    };
    if let Err(error) = set_thread_priority_and_policy(
        thread_native_id(),
        // Nice 0, as read above.
        ThreadPriority::Os(ThreadPriorityOsValue::default()),
        ThreadSchedulePolicy::Normal(normal),
    ) {
        tracing::warn!(?error, ?policy, "cannot set the thread's scheduling policy");
    }
}

#[cfg(not(target_os = "linux"))]
fn set(_policy: Policy) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use thread_priority::unix::{
        thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
    };

    fn policy() -> ThreadSchedulePolicy {
        thread_schedule_policy().expect("the thread's policy")
    }

    const BATCH: ThreadSchedulePolicy =
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    const OTHER: ThreadSchedulePolicy =
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);

    /// `body`'s result on a new thread under [`background`]'s policy; `None` when this test
    /// process runs at a nice value other than 0, where the policy is left alone (checked
    /// instead).
    fn in_background<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let nice = rustix::process::getpriority_process(None).expect("the nice value");
        let before = policy();
        std::thread::spawn(move || {
            background();
            if nice != 0 {
                assert_eq!(policy(), before, "a thread at nice {nice} keeps its policy");
                return None;
            }
            assert_eq!(policy(), BATCH);
            Some(body())
        })
        .join()
        .expect("the background thread")
    }

    /// The CPUs the calling thread may run on, by number.
    fn affinity() -> Vec<usize> {
        let set = rustix::thread::sched_getaffinity(None).expect("the thread's CPUs");
        (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect()
    }

    /// A thread confined to one CPU runs there, and so do the threads it starts (as the
    /// HTTP runtime's, the log's and the engine's threads do, started after
    /// `serving_process`).
    #[test]
    fn a_thread_on_one_cpu_starts_its_threads_there() {
        let (own, started) = std::thread::spawn(|| {
            let cpu = *affinity().last().expect("some CPU to run on");
            run_on(&[cpu]).expect("a CPU the process may use");
            let started = std::thread::spawn(|| (affinity(), rustix::thread::sched_getcpu()))
                .join()
                .expect("the started thread");
            ((affinity(), cpu), started)
        })
        .join()
        .expect("the confined thread");
        let (own, cpu) = own;
        assert_eq!(own, vec![cpu]);
        assert_eq!(started, (vec![cpu], cpu));
    }

    /// A CPU the process may not use (past the machine's) is refused, alone or beside one
    /// it may use, naming the setting and the CPU; the thread keeps the CPUs it had.
    #[test]
    fn a_cpu_the_process_may_not_use_is_refused_naming_the_setting() {
        std::thread::spawn(|| {
            let before = affinity();
            let absent = rustix::thread::CpuSet::MAX_CPU - 1;
            assert!(!before.contains(&absent), "a machine with {absent} CPUs");
            for cpus in [vec![absent], vec![before[0], absent]] {
                let error = run_on(&cpus).expect_err("no such CPU");
                assert!(
                    error.contains("http.cpus") && error.contains(&format!("[{absent}]")),
                    "{error}"
                );
                assert_eq!(affinity(), before);
            }
        })
        .join()
        .expect("the thread");
    }

    /// Turned off for the whole process, whichever thread asks.
    #[test]
    fn transparent_huge_pages_are_turned_off_for_the_process() {
        std::thread::spawn(without_transparent_huge_pages)
            .join()
            .expect("the thread");
        assert!(rustix::thread::transparent_huge_pages_are_disabled().expect("readable"));
    }

    /// A thread under `background` starts its threads under it, and one of them can
    /// return to the default policy (as the HTTP runtime's workers do).
    #[test]
    fn background_threads_pass_batch_on_and_an_answering_thread_leaves_it() {
        let seen = in_background(|| {
            let inherited = std::thread::spawn(policy).join().expect("the child");
            let answering = std::thread::spawn(|| {
                answering();
                policy()
            })
            .join()
            .expect("the answering thread");
            (inherited, answering)
        });
        if let Some(seen) = seen {
            assert_eq!(seen, (BATCH, OTHER));
        }
    }

    /// The HTTP runtime's workers answer under the default policy, though the thread that
    /// builds the runtime runs under `background`'s.
    #[test]
    fn the_http_runtime_workers_run_under_the_default_policy() {
        let seen = in_background(|| {
            let runtime = crate::cmd_ingress::http_runtime("http", 1, true).expect("the runtime");
            runtime.block_on(async { tokio::spawn(async { policy() }).await.expect("the task") })
        });
        if let Some(seen) = seen {
            assert_eq!(seen, OTHER);
        }
    }

    /// A server's accept loop runs on the HTTP runtime's workers, under the default
    /// policy, though the thread that waits for it runs under `background`'s; a panic in
    /// it reaches that thread.
    #[test]
    fn an_accept_loop_runs_on_the_workers() {
        let seen = in_background(|| {
            let runtime = crate::cmd_ingress::http_runtime("http", 1, true).expect("the runtime");
            let on = crate::cmd_ingress::serve_on_workers(&runtime, async {
                (std::thread::current().name().map(str::to_string), policy())
            });
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::cmd_ingress::serve_on_workers(&runtime, async { panic!("the loop failed") })
            }));
            let message = panicked
                .expect_err("the task's panic is resumed")
                .downcast::<&str>()
                .map(|message| message.to_string());
            (on, message.ok())
        });
        if let Some(seen) = seen {
            assert_eq!(
                seen,
                (
                    (Some("http".to_string()), OTHER),
                    Some("the loop failed".to_string())
                )
            );
        }
    }
}
