//! What `benches/src/bin/read_model_copy.rs` and `read_model_apply.rs` measure (not part
//! of the API): the read model's copy for its snapshot (`cow_map`), and the model applying
//! a crowd's hold + confirm outcomes, both driven by a real engine in one thread.

use crate::read_model::ReadModel;
use engine::{EventId, EventSpec, Outcome, Reply};
use std::sync::Arc;

const ARENAS: u32 = 120;
const USERS: u64 = 200_000;

/// An engine and the read model that follows it, in one thread: each command's outcome,
/// named as the publisher names it, is applied to the model at once.
struct Driver {
    engine: engine::Engine,
    model: ReadModel,
    offset: u64,
    time_ms: u64,
    /// Every outcome applied, when asked to keep them.
    kept: Option<Vec<Arc<Outcome>>>,
}

impl Driver {
    /// An engine with [`ARENAS`] arenas of 10,000 seats (one category), and its model.
    fn with_arenas() -> Driver {
        use engine::{CategorySpec, Command, EngineConfig, RowSpec, SectionSpec, WaitlistPolicy};
        let mut driver = Driver {
            engine: engine::Engine::new(EngineConfig::default()),
            model: ReadModel::new(1_000_000),
            offset: 0,
            time_ms: 1_000_000,
            kept: None,
        };
        for arena in 0..ARENAS {
            let spec = EventSpec {
                name: format!("Arena {arena}"),
                description: String::new(),
                city: "Lyon".into(),
                country: "FR".into(),
                venue: "Arena".into(),
                starts_at_ms: 10_000_000_000,
                ends_at_ms: None,
                sales_open_at_ms: None,
                sales_close_at_ms: None,
                hold_ttl_ms: 300_000,
                seats_per_order_max: 4,
                seats_per_user_max: None,
                waitlist_policy: WaitlistPolicy::Strict,
                categories: vec![CategorySpec {
                    name: "Floor".into(),
                    price_cents: 5000,
                }],
                sections: vec![SectionSpec {
                    name: "A".into(),
                    rows: (0..100)
                        .map(|row| RowSpec {
                            label: row.to_string(),
                            seats: 100,
                            category: "Floor".into(),
                        })
                        .collect(),
                }],
                general_admission: vec![],
            };
            let made = driver.apply(Command::CreateEvent {
                tenant: "bench".into(),
                spec: Box::new(spec),
            });
            assert!(made.result.is_ok(), "{:?}", made.result);
        }
        driver
    }

    fn apply(&mut self, command: engine::Command) -> Arc<Outcome> {
        let outcome = self
            .engine
            .apply(self.offset, self.time_ms, &engine::Request::new(command));
        let outcome = Arc::new(self.engine.named(outcome));
        self.offset += 1;
        self.model.apply(&outcome);
        if let Some(kept) = &mut self.kept {
            kept.push(Arc::clone(&outcome));
        }
        outcome
    }

    /// Purchase `n` of the run: a best-available hold of 1-2 seats by user `n` modulo
    /// [`USERS`], then its confirm.
    fn purchase(&mut self, n: u64) {
        use engine::{Command, Selection};
        self.time_ms += 1;
        let user = format!("buyer-{}", n % USERS);
        let placed = self.apply(Command::PlaceHold {
            user: engine::UserRef::Name(user.clone()),
            event: EventId((n % u64::from(ARENAS)) as u32),
            selection: Selection::Best {
                quantity: 1 + (n % 2) as u32,
                category: None,
                together: true,
            },
            wait: false,
        });
        let Ok(Reply::HoldPlaced(view)) = &placed.result else {
            panic!("the arenas never sell out: {:?}", placed.result);
        };
        let hold = view.hold;
        let confirmed = self.apply(Command::ConfirmHold {
            user: user.into(),
            hold,
            payment_ref: "pay".into(),
        });
        assert!(confirmed.result.is_ok(), "{:?}", confirmed.result);
    }
}

/// What `benches/src/bin/read_model_copy.rs` measures (not part of the API): the pause a
/// copy of the read model costs the outcome follower (its snapshot hand-off), after
/// `purchases` best-available holds of 1-2 seats and their confirms, by 200,000 users
/// over 120 arenas of 10,000 seats (every hold granted); and what the first writes after
/// a copy cost, against the same writes without one (the copied shards).
#[doc(hidden)]
pub fn copy_pause_bench(purchases: u64) -> CopyPause {
    use std::time::Instant;
    let mut driver = Driver::with_arenas();
    const AFTER: u64 = 10_000;
    assert!(purchases >= AFTER, "at least {AFTER} purchases");
    for n in 0..purchases - AFTER {
        driver.purchase(n);
    }
    let started = Instant::now();
    for n in purchases - AFTER..purchases {
        driver.purchase(n);
    }
    let before_copy = started.elapsed();
    let started = Instant::now();
    let copy = driver.model.clone();
    let copy_pause = started.elapsed();
    let started = Instant::now();
    for n in purchases..purchases + AFTER {
        driver.purchase(n);
    }
    let after_copy = started.elapsed();
    drop(copy);
    let started = Instant::now();
    for n in purchases + AFTER..purchases + 2 * AFTER {
        driver.purchase(n);
    }
    let without_copy = started.elapsed();
    CopyPause {
        copy_pause,
        purchases_after: AFTER,
        before_copy,
        after_copy,
        without_copy,
    }
}

/// What `benches/src/bin/read_model_apply.rs` measures (not part of the API): the outcome
/// follower's read model applying `purchases` hold + confirm pairs (as
/// [`copy_pause_bench`] makes them: the first 200,000 each by a new user, as in an
/// on-sale), the outcomes made beforehand by an engine, so that only `ReadModel::apply`
/// is timed, on a model that starts with the arenas alone. Nanoseconds an outcome.
#[doc(hidden)]
pub fn apply_bench(purchases: u64) -> f64 {
    let mut driver = Driver::with_arenas();
    let mut model = driver.model.clone();
    driver.kept = Some(Vec::with_capacity(2 * purchases as usize));
    for n in 0..purchases {
        driver.purchase(n);
    }
    let outcomes = driver.kept.take().expect("kept");
    drop(driver);
    let started = std::time::Instant::now();
    for outcome in &outcomes {
        model.apply(outcome);
    }
    let elapsed = started.elapsed();
    assert_eq!(model.anomalies, 0, "every outcome fits the model");
    elapsed.as_nanos() as f64 / outcomes.len() as f64
}

#[doc(hidden)]
#[derive(Debug)]
pub struct CopyPause {
    /// The model's `clone`: how long the follower answers nothing.
    pub copy_pause: std::time::Duration,
    /// How many purchases each of the three timings below applies.
    pub purchases_after: u64,
    /// The last `purchases_after` purchases before the copy.
    pub before_copy: std::time::Duration,
    /// The next `purchases_after` purchases, right after the copy (engine included).
    pub after_copy: std::time::Duration,
    /// The next `purchases_after`, the copy dropped.
    pub without_copy: std::time::Duration,
}
