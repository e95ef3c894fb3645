//! The replica's role rules (`runtime::role`), read as transcripts: each input, then the
//! role it leaves and the actions it asks for (`role: action, action`).

use runtime::role::{Action, RoleMachine, RoleStart};
use runtime::Role;

/// One input to the role machine.
#[derive(Clone, Copy, Debug)]
enum In<'a> {
    /// The outcome of this offset was handled.
    Seen(u64),
    /// The outcome of a `Promote` record naming this node, at this offset.
    Promote(u64, &'a str),
    Fenced,
    WriterOpened,
    /// The operator asks for a promotion.
    Request,
    AppendFailed,
    /// The outcomes log's end as read.
    OutcomesEnd(u64),
    /// The time, in milliseconds.
    Tick(u64),
}

struct Start<'a> {
    node: &'a str,
    configured: Role,
    named: Option<&'a str>,
    next_offset: u64,
    log_end_offset: u64,
    auto_promote_after_ms: u64,
}

const B: Start<'static> = Start {
    node: "b",
    configured: Role::Standby,
    named: None,
    next_offset: 0,
    log_end_offset: 0,
    auto_promote_after_ms: 0,
};

fn start(start: Start<'_>) -> (RoleMachine, String) {
    let mut machine = RoleMachine::new(RoleStart {
        node: start.node.to_string(),
        configured: start.configured,
        named_primary: start.named.map(str::to_string),
        next_offset: start.next_offset,
        log_end_offset: start.log_end_offset,
        auto_promote_after_ms: start.auto_promote_after_ms,
    });
    let shown = show(&mut machine);
    (machine, shown)
}

/// The role (with ` promoting` while a promotion is pending) and the actions polled.
fn show(machine: &mut RoleMachine) -> String {
    let mut text = machine.role().as_str().to_string();
    if machine.promotion_pending() {
        text.push_str(" promoting");
    }
    let actions: Vec<&str> = std::iter::from_fn(|| machine.poll_action())
        .map(Action::as_str)
        .collect();
    if !actions.is_empty() {
        text.push_str(": ");
        text.push_str(&actions.join(", "));
    }
    text
}

/// Gives `input`, then compares what the machine shows with `expected`.
#[track_caller]
fn check(machine: &mut RoleMachine, input: In<'_>, expected: &str) {
    let mut refusal = None;
    match input {
        In::Seen(offset) => machine.outcome_seen(offset, None),
        In::Promote(offset, node) => machine.outcome_seen(offset, Some(node)),
        In::Fenced => machine.fenced(),
        In::WriterOpened => machine.writer_opened(),
        In::Request => refusal = machine.request_promotion().err(),
        In::AppendFailed => machine.promote_append_failed(),
        In::OutcomesEnd(end) => machine.outcomes_log_end(end),
        In::Tick(now_ms) => machine.tick(now_ms),
    }
    let mut shown = show(machine);
    if let Some(refusal) = refusal {
        shown = format!("refused ({refusal}); {shown}");
    }
    assert_eq!(shown, expected, "after {input:?}");
}

#[test]
fn a_replica_publishes_nothing_until_it_has_caught_up_then_takes_the_configured_role() {
    let (mut a, shown) = start(Start {
        node: "a",
        configured: Role::Primary,
        log_end_offset: 3,
        ..B
    });
    assert_eq!(shown, "catching_up");
    assert!(!a.publishes_nothing(), "it may be about to publish");
    assert_eq!(a.catching_up_until(), Some(3));
    check(&mut a, In::Seen(1), "catching_up");
    check(&mut a, In::Seen(2), "standby: open_writer");
    assert_eq!(a.catching_up_until(), None);
    check(&mut a, In::WriterOpened, "primary");
    check(&mut a, In::Seen(3), "primary");

    let (mut b, shown) = start(Start {
        log_end_offset: 3,
        ..B
    });
    assert_eq!(shown, "catching_up");
    check(&mut b, In::Seen(2), "standby");
    assert!(b.publishes_nothing());

    // Nothing to replay: the role is decided at start.
    let (_, shown) = start(Start {
        node: "a",
        configured: Role::Primary,
        next_offset: 5,
        log_end_offset: 5,
        ..B
    });
    assert_eq!(shown, "standby: open_writer");
    let (_, shown) = start(B);
    assert_eq!(shown, "standby");
}

#[test]
fn once_a_promote_record_exists_the_log_decides_not_the_configuration() {
    // A restarted old primary: the log named b since. It comes back as a standby.
    let (mut a, shown) = start(Start {
        node: "a",
        configured: Role::Primary,
        named: Some("b"),
        next_offset: 10,
        log_end_offset: 12,
        ..B
    });
    assert_eq!(shown, "catching_up");
    check(&mut a, In::Seen(11), "standby");

    // A record naming this node while catching up decides nothing before the end...
    let (mut b, _) = start(Start {
        log_end_offset: 5,
        ..B
    });
    check(&mut b, In::Promote(2, "b"), "catching_up");
    // ...and a later one naming another undoes it: the last one counts.
    check(&mut b, In::Promote(3, "c"), "catching_up");
    check(&mut b, In::Seen(4), "standby");

    let (mut b, _) = start(Start {
        log_end_offset: 5,
        ..B
    });
    check(&mut b, In::Promote(2, "b"), "catching_up");
    check(&mut b, In::Seen(4), "standby: open_writer");
}

#[test]
fn a_promote_record_makes_its_node_primary_and_the_primary_step_down() {
    let (mut a, _) = start(Start {
        node: "a",
        configured: Role::Primary,
        ..B
    });
    check(&mut a, In::WriterOpened, "primary");
    let (mut b, _) = start(B);
    // Both apply the record at the same offset.
    check(&mut b, In::Promote(7, "b"), "standby: open_writer");
    check(&mut a, In::Promote(7, "b"), "standby: step_down");
    check(&mut b, In::WriterOpened, "primary");
    // A record naming the primary itself, or the standby someone else, changes nothing.
    check(&mut b, In::Promote(8, "b"), "primary");
    check(&mut a, In::Promote(9, "c"), "standby");
    // Fail back.
    check(&mut a, In::Promote(10, "a"), "standby: open_writer");
    check(&mut b, In::Promote(10, "a"), "standby: step_down");
}

#[test]
fn a_fenced_primary_steps_down_and_only_a_later_record_naming_it_makes_it_primary_again() {
    let (mut a, _) = start(Start {
        node: "a",
        configured: Role::Primary,
        ..B
    });
    check(&mut a, In::WriterOpened, "primary");
    check(&mut a, In::Fenced, "standby: step_down");
    check(&mut a, In::Seen(4), "standby");
    check(&mut a, In::Fenced, "standby");
    check(&mut a, In::Promote(5, "b"), "standby");
    check(&mut a, In::Promote(6, "a"), "standby: open_writer");
}

#[test]
fn the_operator_promotes_a_standby_once_and_a_primary_never() {
    let (mut b, _) = start(B);
    check(&mut b, In::Request, "standby promoting: append_promote");
    check(
        &mut b,
        In::Request,
        "refused (a promotion of this replica is already under way); standby promoting",
    );
    check(&mut b, In::AppendFailed, "standby");
    check(&mut b, In::Request, "standby promoting: append_promote");
    check(&mut b, In::Promote(3, "b"), "standby: open_writer");
    check(
        &mut b,
        In::Request,
        "refused (this replica is already primary); standby",
    );
    check(&mut b, In::WriterOpened, "primary");
    check(
        &mut b,
        In::Request,
        "refused (this replica is already primary); primary",
    );

    // A replica still catching up may be promoted by hand: the record decides once caught up.
    let (mut c, _) = start(Start {
        node: "c",
        log_end_offset: 4,
        ..B
    });
    check(&mut c, In::Request, "catching_up promoting: append_promote");
    check(&mut c, In::Seen(3), "standby promoting");
    check(&mut c, In::Promote(4, "c"), "standby: open_writer");
}

#[test]
fn a_standby_promotes_itself_when_what_it_applied_goes_unanswered_for_the_configured_time() {
    let (mut b, _) = start(Start {
        auto_promote_after_ms: 1_000,
        ..B
    });
    check(&mut b, In::OutcomesEnd(10), "standby");
    // Idle: nothing new applied, so no sign of death however long.
    check(&mut b, In::Tick(0), "standby");
    check(&mut b, In::Tick(60_000), "standby");
    // Applied and answered: the outcomes log grows.
    check(&mut b, In::Seen(0), "standby");
    check(&mut b, In::OutcomesEnd(11), "standby");
    check(&mut b, In::Tick(61_000), "standby");
    check(&mut b, In::Tick(70_000), "standby");
    // Applied and not answered: the clock starts at the first tick that sees it.
    check(&mut b, In::Seen(1), "standby");
    check(&mut b, In::Tick(70_100), "standby");
    check(&mut b, In::Tick(71_099), "standby");
    check(
        &mut b,
        In::Tick(71_100),
        "standby promoting: append_promote",
    );
    check(&mut b, In::Tick(90_000), "standby promoting");
    check(&mut b, In::Promote(2, "b"), "standby: open_writer");
    check(&mut b, In::WriterOpened, "primary");
    check(&mut b, In::Seen(3), "primary");
    check(&mut b, In::Tick(100_000), "primary");
}

#[test]
fn a_slow_primary_that_answers_in_time_resets_the_clock() {
    let (mut b, _) = start(Start {
        auto_promote_after_ms: 1_000,
        ..B
    });
    check(&mut b, In::OutcomesEnd(10), "standby");
    check(&mut b, In::Seen(0), "standby");
    check(&mut b, In::Tick(0), "standby");
    check(&mut b, In::Tick(999), "standby");
    check(&mut b, In::OutcomesEnd(11), "standby");
    check(&mut b, In::Tick(1_500), "standby");
    // Without a reading of the outcomes log's end there is no sign either way.
    let (mut c, _) = start(Start {
        node: "c",
        auto_promote_after_ms: 1_000,
        ..B
    });
    check(&mut c, In::Seen(0), "standby");
    check(&mut c, In::Tick(0), "standby");
    check(&mut c, In::Tick(5_000), "standby");
    // Off unless configured.
    let (mut d, _) = start(B);
    check(&mut d, In::OutcomesEnd(10), "standby");
    check(&mut d, In::Seen(0), "standby");
    check(&mut d, In::Tick(0), "standby");
    check(&mut d, In::Tick(5_000), "standby");
}

/// The bug this machine fixed: a restarting standby was reported as a standby while it
/// replayed, so the replay (applied, never answered by an idle primary) fired automatic
/// promotion. Catching up never promotes, and what was replayed does not count after.
#[test]
fn automatic_promotion_never_fires_while_catching_up_nor_for_what_was_replayed() {
    let (mut b, _) = start(Start {
        next_offset: 0,
        log_end_offset: 1_000,
        auto_promote_after_ms: 1_000,
        ..B
    });
    check(&mut b, In::OutcomesEnd(1_000), "catching_up");
    check(&mut b, In::Tick(0), "catching_up");
    check(&mut b, In::Seen(500), "catching_up");
    check(&mut b, In::Tick(5_000), "catching_up");
    check(&mut b, In::Seen(999), "standby");
    // The primary is alive and idle: the replayed records are no sign of death.
    check(&mut b, In::Tick(10_000), "standby");
    check(&mut b, In::Tick(20_000), "standby");
    // A new record it applies that goes unanswered is.
    check(&mut b, In::Seen(1_000), "standby");
    check(&mut b, In::Tick(20_001), "standby");
    check(
        &mut b,
        In::Tick(21_001),
        "standby promoting: append_promote",
    );
}

#[test]
#[should_panic(expected = "outcomes are seen in offset order")]
fn outcomes_seen_out_of_order_are_a_bug() {
    let (mut b, _) = start(B);
    b.outcome_seen(3, None);
    b.outcome_seen(3, None);
}
