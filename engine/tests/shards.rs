//! Ids say their shard: an engine of shard `k` of `n` gives out only ids congruent to `k`
//! modulo `n` and knows no other. Here: every command that takes an id refuses another
//! shard's id (and an unknown id of its own) as "not found", exactly as an unknown id is
//! refused with one shard; the shard's configuration is validated and stamped, so a
//! replica of one shard refuses another shard's snapshot or log. (That a shard decides
//! as one engine does under the id mapping is `model.rs`'s
//! `a_shard_decides_as_one_engine_under_the_id_mapping` and `desk_model.rs`'s
//! `desks_on_a_shard_decide_as_on_one_engine`.)

mod common;

use common::*;
use engine::*;

const SECRET: &[u8] = b"demo-ticket-secret";

fn shard(index: u32, count: u32) -> EngineConfig {
    EngineConfig {
        shard: ShardPlace { index, count },
        ..EngineConfig::default()
    }
}

/// Applies `command` and expects it refused as "not found" (`what`), changing nothing.
#[track_caller]
fn refused(h: &mut Harness, command: Command, what: NotFound) {
    let before = (
        h.engine.seat_digest(),
        h.engine.waiting_count(),
        h.engine.booking_count(),
    );
    let outcome = h.run(command.clone());
    assert_eq!(
        outcome.result,
        Err(Rejection::NotFound { what }),
        "{command:?}"
    );
    assert!(outcome.effects.is_empty(), "{command:?}");
    let after = (
        h.engine.seat_digest(),
        h.engine.waiting_count(),
        h.engine.booking_count(),
    );
    assert_eq!(before, after, "{command:?} changed nothing");
}

fn ticket(booking: u64, index: u32) -> TicketId {
    TicketId {
        booking: BookingId(booking),
        index,
    }
}

#[test]
fn a_shard_gives_out_its_own_ids_and_refuses_every_other_as_not_found() {
    // Shard 1 of 3: its first event is ev_1, its first hold h_4 (number 1), its first
    // booking b_4; ids of shards 0 and 2 sit on either side of each.
    let mut h = Harness::with_config(shard(1, 3));
    let ev = h.create(theatre(1, 2));
    assert_eq!(ev, EventId(1));
    let desk = match h.run(create_desk("t1", desk_spec(1, 30))).result {
        Ok(Reply::DeskCreated { desk, .. }) => desk,
        other => panic!("{other:?}"),
    };
    assert_eq!(desk, DeskId(1));
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_4 [A-1-1]");
    let booking = booking_id(&h.run(confirm("ann", 4)).result);
    assert_eq!(booking, BookingId(4));
    check(&mut h, hold("bob", ev, &["A-1-2"]), "held h_7 [A-1-2]");
    let waiter = match h.run(join("cat", ev, 1, false)).result {
        Ok(Reply::WaitlistJoined { waiter, .. }) => waiter,
        other => panic!("{other:?}"),
    };
    assert_eq!(waiter, WaiterId(4));
    let desk_ticket = match h.run(validate_desk_ticket("ann", 1, "gold")).result {
        Ok(Reply::DeskTicketCreated(view)) => view.ticket,
        other => panic!("{other:?}"),
    };
    assert_eq!(desk_ticket, DeskTicketId(4));
    let code = tickets::code(SECRET, ticket(4, 1));
    assert!(
        code.starts_with("t_4_1."),
        "a ticket names its global booking, so codes differ across shards: {code}"
    );

    // Events: shards 0 and 2's neighbours, and this shard's next row (not created).
    for other in [EventId(0), EventId(2), EventId(4), EventId(u32::MAX)] {
        let tenant = || "t1".to_string();
        for command in [
            Command::UpdateEvent {
                tenant: tenant(),
                event: other,
                patch: Box::new(EventPatch::default()),
            },
            Command::CancelEvent {
                tenant: tenant(),
                event: other,
            },
            hold("dan", other, &["A-1-1"]),
            best("dan", other, 1, false),
            join("dan", other, 1, false),
            Command::CheckIn {
                tenant: tenant(),
                event: other,
                code: code.clone(),
            },
            Command::CheckInTicket {
                tenant: tenant(),
                event: other,
                ticket: ticket(4, 1),
            },
        ] {
            refused(&mut h, command, NotFound::Event);
        }
    }
    // Holds, bookings, waiters, tickets: the other shards' neighbours of the live ones,
    // this shard's next number, and its number 0 (id 1), which no object ever has.
    for other in [3, 5, 10, 1] {
        refused(&mut h, confirm("ann", other), NotFound::Hold);
        refused(&mut h, release("bob", other), NotFound::Hold);
        refused(
            &mut h,
            Command::CancelBooking {
                user: "ann".into(),
                booking: BookingId(other),
            },
            NotFound::Booking,
        );
        refused(&mut h, leave("cat", other), NotFound::Waiter);
        refused(
            &mut h,
            Command::CheckIn {
                tenant: "t1".into(),
                event: ev,
                code: tickets::code(SECRET, ticket(other, 1)),
            },
            NotFound::Ticket,
        );
        refused(
            &mut h,
            Command::CheckInTicket {
                tenant: "t1".into(),
                event: ev,
                ticket: ticket(other, 1),
            },
            NotFound::Ticket,
        );
        refused(
            &mut h,
            allocate_desk_ticket("ann", 1, other),
            NotFound::DeskTicket,
        );
        refused(
            &mut h,
            cancel_desk_ticket("ann", 1, other),
            NotFound::DeskTicket,
        );
    }
    // Desks: the live ticket named under another shard's desk (or an unknown one of this
    // shard's) is not found either.
    for other in [0, 2, 4] {
        refused(&mut h, desk_ticket_of("dan", other, "gold"), NotFound::Desk);
        refused(
            &mut h,
            allocate_desk_ticket("ann", other, 4),
            NotFound::DeskTicket,
        );
        refused(
            &mut h,
            cancel_desk_ticket("ann", other, 4),
            NotFound::DeskTicket,
        );
    }

    // The shard's own ids still work, each once.
    assert!(matches!(
        h.run(allocate_desk_ticket("ann", 1, 4)).result,
        Ok(Reply::DeskTicketConfirmed(_))
    ));
    check(
        &mut h,
        Command::CheckIn {
            tenant: "t1".into(),
            event: ev,
            code,
        },
        "checked in t_4_1",
    );
    assert!(matches!(
        h.run(leave("cat", 4)).result,
        Ok(Reply::WaitlistLeft { .. })
    ));
    assert!(matches!(
        h.run(release("bob", 7)).result,
        Ok(Reply::HoldReleased { .. })
    ));
    assert!(matches!(
        h.run(best("dan", ev, 1, false)).result,
        Ok(Reply::HoldPlaced(HoldView {
            hold: HoldId(10),
            ..
        }))
    ));
    assert_eq!(h.engine.event_ids().collect::<Vec<_>>(), [EventId(1)]);
    assert_eq!(h.engine.desk_tenant(DeskId(1)), Some("t1"));
    assert_eq!(h.engine.desk_tenant(DeskId(0)), None);
    assert_eq!(h.engine.seat_count(EventId(0)), None);
    assert_eq!(h.engine.availability(EventId(2)), None);
}

#[test]
fn shard_settings_are_validated_naming_the_key() {
    assert_eq!(EngineConfig::default().validate(), Ok(()));
    assert_eq!(shard(255, 256).validate(), Ok(()));
    assert_eq!(
        EngineConfig {
            events_max: 1 << 24,
            desks_max: 1 << 24,
            ..shard(255, 256)
        }
        .validate(),
        Ok(()),
        "the last id of the last shard is u32::MAX"
    );
    for (config, expected) in [
        (shard(0, 0), "shards is 0: a deployment has from 1 to 256 shards"),
        (shard(0, 257), "shards is 257: a deployment has from 1 to 256 shards"),
        (
            shard(3, 3),
            "engine.shard is 3 but shards is 3: shards are numbered from 0 to 2",
        ),
        (
            EngineConfig {
                events_max: (1 << 24) + 1,
                ..shard(0, 256)
            },
            "engine.events_max (16777217) times shards (256) must be at most 4294967296",
        ),
        (
            EngineConfig {
                desks_max: u32::MAX,
                ..shard(0, 2)
            },
            "engine.desks_max (4294967295) times shards (2) must be at most 4294967296",
        ),
        (
            EngineConfig {
                hold_ttl_max_ms: u64::MAX,
                ..EngineConfig::default()
            },
            "engine.confirm_grace_ms, engine.hold_ttl_max_ms and engine.waitlist_wait_max_ms must be at most",
        ),
        (
            EngineConfig {
                event_seats_max: u32::MAX,
                ..EngineConfig::default()
            },
            "engine.event_seats_max must be at most",
        ),
    ] {
        let error = config.validate().expect_err(expected);
        assert!(error.starts_with(expected), "{error}");
    }
}

#[test]
#[should_panic(expected = "engine.shard is 2 but shards is 2")]
fn an_engine_refuses_to_start_on_a_shard_that_does_not_exist() {
    Engine::new(shard(2, 2));
}

#[test]
fn only_several_shards_are_stamped_so_one_shard_is_as_before() {
    let single = EngineConfig::default().stamp();
    assert!(!single.contains_key("shard"));
    assert_eq!(shard(0, 1).stamp(), single);
    let stamp = shard(2, 3).stamp();
    assert_eq!(stamp.get("shard").map(String::as_str), Some("2/3"));
    assert_eq!(stamp.len(), single.len() + 1);
}

/// An engine of shard 2 of 3 with an event, a hold and a booking, restored from its
/// snapshot's bytes.
fn snapshot_of_shard_2_of_3() -> State {
    let mut h = Harness::with_config(shard(2, 3));
    let ev = h.create(theatre(1, 4));
    assert_eq!(ev, EventId(2));
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_5 [A-1-1]");
    assert_eq!(booking_id(&h.run(confirm("ann", 5)).result), BookingId(5));
    let state = snapshot::decode_state(&snapshot::encode_state(h.engine.state())).unwrap();
    let restored = Engine::from_state(shard(2, 3), state.clone());
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    restored.check_invariants();
    state
}

#[test]
fn a_replica_of_another_shard_refuses_the_snapshot_and_the_log_naming_the_key() {
    let state = snapshot_of_shard_2_of_3();
    assert_eq!(Engine::config_mismatch(&state, &shard(2, 3)), None);
    let mismatch = Engine::config_mismatch(&state, &shard(1, 3)).expect("another shard");
    assert_eq!(
        (
            mismatch.key.as_str(),
            mismatch.applied.as_deref(),
            mismatch.configured.as_deref()
        ),
        ("shard", Some("2/3"), Some("1/3"))
    );
    assert!(
        mismatch
            .to_string()
            .starts_with("engine.shard is 1/3 here but the log was applied with 2/3"),
        "{mismatch}"
    );
    // A single-shard replica (no shard stamped) refuses it too, and a shard replica
    // refuses a single-shard state.
    let mismatch = Engine::config_mismatch(&state, &EngineConfig::default()).unwrap();
    assert_eq!(
        (mismatch.key.as_str(), mismatch.configured),
        ("shard", None)
    );
    let single = Engine::new(EngineConfig::default());
    let mismatch = Engine::config_mismatch(single.state(), &shard(0, 2)).unwrap();
    assert_eq!((mismatch.key.as_str(), mismatch.applied), ("shard", None));
    // The log: a `Configure` record written by shard 2's primary stops shard 1's replica.
    let replica = Engine::new(shard(1, 3));
    let configure = Request::new(Command::Configure {
        stamp: shard(2, 3).stamp(),
    });
    let mismatch = replica.logged_config_mismatch(&configure).unwrap();
    assert_eq!(mismatch.key, "shard");
}

#[test]
#[should_panic(expected = "engine.shard is 0/3 here but the log was applied with 2/3")]
fn restoring_another_shards_snapshot_is_a_bug_in_the_shell() {
    Engine::from_state(shard(0, 3), snapshot_of_shard_2_of_3());
}
