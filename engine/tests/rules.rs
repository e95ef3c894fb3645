//! Table tests: one rule per test, read as a transcript of commands and outcomes.

mod common;
use common::*;
use engine::*;

#[test]
fn exact_seats_are_all_or_nothing_and_name_the_taken_seats() {
    let mut h = Harness::new();
    let ev = h.create(theatre(2, 4));
    check(
        &mut h,
        hold("ann", ev, &["A-1-1", "A-1-2"]),
        "held h_1 [A-1-1,A-1-2]",
    );
    check(
        &mut h,
        hold("bob", ev, &["A-1-2", "A-1-3"]),
        "rejected seats_unavailable [A-1-2]",
    );
    // Nothing of bob's request was applied: A-1-3 is still free.
    check(&mut h, hold("bob", ev, &["A-1-3"]), "held h_2 [A-1-3]");
    check(
        &mut h,
        hold("bob", ev, &["A-9-1", "Z-1-1"]),
        r#"rejected UnknownSeats { seats: ["A-9-1", "Z-1-1"] }"#,
    );
    check(
        &mut h,
        hold("bob", ev, &["A-2-1", "A-2-1"]),
        r#"rejected Invalid { reason: "a seat is requested twice" }"#,
    );
    check(
        &mut h,
        hold("bob", EventId(99), &["A-1-1"]),
        "rejected NotFound { what: Event }",
    );
}

#[test]
fn best_available_prefers_best_rows_and_avoids_orphans() {
    let mut h = Harness::new();
    let ev = h.create(theatre(3, 5));
    check(&mut h, hold("x", ev, &["A-1-3"]), "held h_1 [A-1-3]");
    // Row 1 has runs of 2 and 2: a pair fits exactly at A-1-1.
    check(&mut h, best("ann", ev, 2, true), "held h_2 [A-1-1,A-1-2]");
    // Three together do not fit in row 1 (run of 2 left); row 2 takes them.
    check(
        &mut h,
        best("bob", ev, 3, true),
        "held h_3 [A-2-1,A-2-2,A-2-3]",
    );
    // Row 2 has a run of 2 left; four together would leave row 3 with one orphan, so
    // the planner still takes row 3 (no better choice), but a pair prefers A-2-4..5.
    check(&mut h, best("cat", ev, 2, true), "held h_4 [A-1-4,A-1-5]");
    check(
        &mut h,
        best("dan", ev, 4, true),
        "held h_5 [A-3-1,A-3-2,A-3-3,A-3-4]",
    );
    // Not together: the best free seats anywhere.
    check(
        &mut h,
        best("eve", ev, 3, false),
        "held h_6 [A-2-4,A-2-5,A-3-5]",
    );
    check(
        &mut h,
        best("fay", ev, 1, false),
        "rejected SoldOut { category: None, free: 0 }",
    );
}

#[test]
fn a_run_leaving_one_orphan_is_used_only_as_a_last_resort() {
    let mut h = Harness::new();
    let ev = h.create(theatre(2, 4));
    check(&mut h, hold("x", ev, &["A-2-1"]), "held h_1 [A-2-1]");
    // Row 1 (run of 4) would leave one orphan for 3 seats; row 2's run of 3 is exact.
    check(
        &mut h,
        best("ann", ev, 3, true),
        "held h_2 [A-2-2,A-2-3,A-2-4]",
    );
    // Now only row 1 remains: the orphan-leaving run is taken rather than failing.
    check(
        &mut h,
        best("bob", ev, 3, true),
        "held h_3 [A-1-1,A-1-2,A-1-3]",
    );
}

#[test]
fn best_available_without_together_still_prefers_adjacent_seats() {
    let mut h = Harness::new();
    let ev = h.create(theatre(3, 6));
    check(&mut h, hold("x", ev, &["A-1-6"]), "held h_1 [A-1-6]");
    // Four in row 1 would strand A-1-5: row 2 fits them leaving two.
    check(
        &mut h,
        best("ann", ev, 4, false),
        "held h_2 [A-2-1,A-2-2,A-2-3,A-2-4]",
    );
    // Two fit row 1 and leave three: the best row wins.
    check(&mut h, best("bob", ev, 2, false), "held h_3 [A-1-1,A-1-2]");
    check(
        &mut h,
        hold("x", ev, &["A-1-4", "A-3-2", "A-3-4", "A-3-6"]),
        "held h_4 [A-1-4,A-3-2,A-3-4,A-3-6]",
    );
    // Only single free seats in rows 1 and 3, a pair in row 2: the pair.
    check(&mut h, best("cat", ev, 2, false), "held h_5 [A-2-5,A-2-6]");
    // Nothing adjacent fits three: scattered seats, the first free in rank order.
    check(
        &mut h,
        best("dan", ev, 3, false),
        "held h_6 [A-1-3,A-1-5,A-3-1]",
    );
    check(
        &mut h,
        best("eve", ev, 2, true),
        "rejected SoldOut { category: None, free: 2 }",
    );
    check(&mut h, best("eve", ev, 2, false), "held h_7 [A-3-3,A-3-5]");
}

#[test]
fn best_available_without_a_category_takes_seats_then_pools_in_category_order() {
    let mut h = Harness::new();
    let mut spec = arena(1, 2, 3);
    // Listed before Floor, but a later category: Floor is tried first.
    spec.categories.push(CategorySpec {
        name: "Terrace".into(),
        price_cents: 1_000,
    });
    spec.general_admission.insert(
        0,
        PoolSpec {
            category: "Terrace".into(),
            capacity: 5,
        },
    );
    let ev = h.create(spec);
    check(&mut h, best("ann", ev, 2, false), "held h_1 [A-1-1,A-1-2]");
    check(&mut h, best("bob", ev, 2, true), "held h_2 [pool1 x2]");
    // One place left on the floor: four go to the terrace, whole.
    check(&mut h, best("cat", ev, 4, false), "held h_3 [pool2 x4]");
    check(&mut h, best("dan", ev, 1, false), "held h_4 [pool1 x1]");
    check(&mut h, best("eve", ev, 1, false), "held h_5 [pool2 x1]");
    check(
        &mut h,
        best("fay", ev, 1, false),
        "rejected SoldOut { category: None, free: 0 }",
    );
}

/// The ingress appends categories by index (`Selection::BestIndexed`,
/// `Command::JoinWaitlistIndexed`): each is decided as the same category by name, and an
/// index the event lacks is an unknown category, as an unknown name is.
#[test]
fn a_category_by_index_is_decided_as_the_category_by_name() {
    let mut h = Harness::new();
    let ev = h.create(arena(1, 2, 3));
    let by_index = |user: &str, quantity, category| Command::PlaceHold {
        user: user.into(),
        event: ev,
        selection: Selection::BestIndexed {
            quantity,
            category,
            together: false,
        },
        wait: false,
    };
    let join_by_index = |user: &str, category| Command::JoinWaitlistIndexed {
        user: user.into(),
        event: ev,
        quantity: 1,
        category,
        together: false,
    };
    // Category 1 is Floor (the pool), 0 Standard (the seats).
    check(&mut h, by_index("ann", 2, Some(1)), "held h_1 [pool1 x2]");
    check(
        &mut h,
        best_of("bob", ev, 1, Some("Floor"), false),
        "held h_2 [pool1 x1]",
    );
    check(
        &mut h,
        by_index("cat", 2, Some(0)),
        "held h_3 [A-1-1,A-1-2]",
    );
    check(
        &mut h,
        by_index("dan", 1, Some(0)),
        "rejected SoldOut { category: Some(0), free: 0 }",
    );
    check(
        &mut h,
        by_index("dan", 1, None),
        "rejected SoldOut { category: None, free: 0 }",
    );
    check(
        &mut h,
        by_index("dan", 1, Some(2)),
        "rejected NotFound { what: Category }",
    );
    check(&mut h, join_by_index("dan", Some(0)), "joined w_1 #1");
    check(
        &mut h,
        join_by_index("eve", Some(u16::MAX)),
        "rejected NotFound { what: Category }",
    );
}

#[test]
fn general_admission_holds_a_quantity() {
    let mut h = Harness::new();
    let ev = h.create(festival(5));
    check(&mut h, best("ann", ev, 3, false), "held h_1 [pool0 x3]");
    check(
        &mut h,
        best("bob", ev, 3, false),
        "rejected SoldOut { category: None, free: 2 }",
    );
    check(&mut h, confirm("ann", 1), "booked b_1 [pool0 x3] 15000c");
    let availability = h.engine.availability(ev).unwrap();
    assert_eq!(
        (
            availability[0].free,
            availability[0].held,
            availability[0].booked
        ),
        (2, 0, 3)
    );
}

/// Money is exact: the most places an order may have (the default `seats_per_order_cap`)
/// at the maximum price confirm at their exact total, seated or pooled; a price above the
/// maximum never gets in (it used to wrap: two places at 2^63 confirmed at 0).
#[test]
fn totals_are_exact_at_the_maximum_price() {
    let cap = EngineConfig::default().seats_per_order_cap;
    let priced = |mut spec: EventSpec, prices: &[u64]| {
        spec.seats_per_order_max = cap;
        spec.categories = prices
            .iter()
            .enumerate()
            .map(|(index, &price_cents)| CategorySpec {
                name: if index == 0 {
                    "Standard".into()
                } else {
                    format!("C{index}")
                },
                price_cents,
            })
            .collect();
        spec
    };
    // Row 1 is Standard, row 2 the second category.
    let mixed = |prices: &[u64]| {
        let mut spec = priced(theatre(2, cap), prices);
        spec.sections[0].rows[1].category = "C1".into();
        spec
    };
    let over = || {
        Err(Rejection::Invalid {
            reason: format!(r#"category "Standard" costs more than {PRICE_CENTS_MAX} cents"#),
        })
    };
    let cap_cents = u64::from(cap);
    // (spec, what to hold, the booking's total or why the event was refused)
    let cases: Vec<(EventSpec, Selection, Result<u64, Rejection>)> = vec![
        (
            priced(theatre(1, cap), &[PRICE_CENTS_MAX]),
            Selection::Best {
                quantity: cap,
                category: None,
                together: false,
            },
            Ok(cap_cents * PRICE_CENTS_MAX),
        ),
        (
            priced(festival(cap), &[PRICE_CENTS_MAX]),
            Selection::Best {
                quantity: cap,
                category: None,
                together: false,
            },
            Ok(cap_cents * PRICE_CENTS_MAX),
        ),
        (
            mixed(&[PRICE_CENTS_MAX, 1]),
            Selection::Seats(vec!["A-1-1".into(), "A-2-1".into(), "A-2-2".into()]),
            Ok(PRICE_CENTS_MAX + 2),
        ),
        (
            priced(festival(2), &[0]),
            Selection::Best {
                quantity: 2,
                category: None,
                together: false,
            },
            Ok(0),
        ),
        (
            priced(festival(2), &[PRICE_CENTS_MAX + 1]),
            Selection::Seats(vec![]),
            over(),
        ),
        (
            priced(festival(2), &[1 << 63]),
            Selection::Seats(vec![]),
            over(),
        ),
        (
            priced(festival(2), &[u64::MAX]),
            Selection::Seats(vec![]),
            over(),
        ),
        (
            mixed(&[1, PRICE_CENTS_MAX + 1]),
            Selection::Seats(vec![]),
            Err(Rejection::Invalid {
                reason: format!(r#"category "C1" costs more than {PRICE_CENTS_MAX} cents"#),
            }),
        ),
    ];
    for (spec, selection, expected) in cases {
        let mut h = Harness::new();
        let created = h.run(Command::CreateEvent {
            tenant: "t1".into(),
            spec: Box::new(spec.clone()),
        });
        let total = match created.result {
            Ok(Reply::EventCreated { event, .. }) => {
                let held = h.run(Command::PlaceHold {
                    user: "ann".into(),
                    event,
                    selection,
                    wait: false,
                });
                let hold = hold_id(&held.result);
                match h.run(confirm("ann", hold.0)).result {
                    Ok(Reply::HoldConfirmed(view)) => Ok(view.total_cents),
                    other => panic!("{other:?}"),
                }
            }
            Err(rejection) => {
                assert_eq!(h.engine.event_count(), 0, "a refused event changes nothing");
                Err(rejection)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(total, expected, "{:?}", spec.categories);
    }
}

/// `sold_out` says which category was asked for and how much of it is free.
#[test]
fn sold_out_names_the_category_and_what_is_left() {
    let mut h = Harness::new();
    let mut spec = theatre(1, 2);
    spec.categories.push(CategorySpec {
        name: "Floor".into(),
        price_cents: 1_000,
    });
    spec.general_admission.push(PoolSpec {
        category: "Floor".into(),
        capacity: 3,
    });
    let ev = h.create(spec);
    let floor = |quantity| Command::PlaceHold {
        user: "ann".into(),
        event: ev,
        selection: Selection::Best {
            quantity,
            category: Some("Floor".into()),
            together: false,
        },
        wait: false,
    };
    check(&mut h, floor(2), "held h_1 [pool1 x2]");
    check(
        &mut h,
        floor(2),
        "rejected SoldOut { category: Some(1), free: 1 }",
    );
    // Any category: 2 seats and 1 Floor place are free, 4 are asked for.
    check(
        &mut h,
        best("bob", ev, 4, false),
        "rejected SoldOut { category: None, free: 3 }",
    );
}

#[test]
fn limits_per_order_and_per_user() {
    let mut h = Harness::new();
    let ev = h.create(EventSpec {
        seats_per_order_max: 3,
        seats_per_user_max: Some(4),
        ..theatre(2, 10)
    });
    check(
        &mut h,
        best("ann", ev, 4, true),
        "rejected LimitExceeded { limit: SeatsPerOrder, max: 3 }",
    );
    check(
        &mut h,
        best("ann", ev, 0, true),
        r#"rejected Invalid { reason: "quantity must be at least 1" }"#,
    );
    check(
        &mut h,
        best("ann", ev, 3, true),
        "held h_1 [A-1-1,A-1-2,A-1-3]",
    );
    check(
        &mut h,
        best("ann", ev, 2, true),
        "rejected LimitExceeded { limit: SeatsPerUser, max: 4 }",
    );
    check(
        &mut h,
        confirm("ann", 1),
        "booked b_1 [A-1-1,A-1-2,A-1-3] 15000c",
    );
    // Booked seats count too; another user is not affected.
    check(
        &mut h,
        best("ann", ev, 2, true),
        "rejected LimitExceeded { limit: SeatsPerUser, max: 4 }",
    );
    check(&mut h, best("ann", ev, 1, true), "held h_2 [A-1-4]");
    check(
        &mut h,
        best("bob", ev, 3, true),
        "held h_3 [A-1-5,A-1-6,A-1-7]",
    );
    check(
        &mut h,
        best("bob", ev, u32::MAX, true),
        "rejected LimitExceeded { limit: SeatsPerOrder, max: 3 }",
    );
}

#[test]
fn sales_window_opens_and_closes_by_log_time() {
    let mut h = Harness::new();
    let ev = h.create(EventSpec {
        sales_open_at_ms: Some(T0 + 60_000),
        sales_close_at_ms: Some(T0 + 120_000),
        ..theatre(1, 4)
    });
    check(
        &mut h,
        best("ann", ev, 1, true),
        "rejected SalesClosed { reason: NotOpenYet }",
    );
    h.now_ms = T0 + 60_000;
    check(&mut h, best("ann", ev, 1, true), "held h_1 [A-1-1]");
    h.now_ms = T0 + 120_000;
    check(
        &mut h,
        best("bob", ev, 1, true),
        "rejected SalesClosed { reason: Closed }",
    );
    // A hold placed while sales were open may still be paid.
    check(&mut h, confirm("ann", 1), "booked b_1 [A-1-1] 5000c");
}

#[test]
fn holds_expire_by_log_time_after_the_grace() {
    let mut h = Harness::new();
    let ev = h.create(EventSpec {
        hold_ttl_ms: 60_000,
        ..theatre(1, 4)
    });
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(&mut h, hold("bob", ev, &["A-1-2"]), "held h_2 [A-1-2]");
    // Past expires_at but within the 5 s grace: still confirmable.
    h.now_ms = T0 + 60_000 + 5_000;
    check(&mut h, confirm("ann", 1), "booked b_1 [A-1-1] 5000c");
    // One millisecond past the grace: bob's hold expires before his confirm applies.
    h.now_ms += 1;
    check(
        &mut h,
        confirm("bob", 2),
        "rejected HoldExpired | expired h_2 [A-1-2]",
    );
    check(&mut h, confirm("bob", 2), "rejected HoldExpired");
    assert_eq!(h.engine.next_due_ms(), None);
}

#[test]
fn expiry_runs_in_due_time_then_hold_id_order() {
    let mut h = Harness::new();
    let ev = h.create(EventSpec {
        hold_ttl_ms: 60_000,
        ..theatre(1, 4)
    });
    check(&mut h, hold("ann", ev, &["A-1-3"]), "held h_1 [A-1-3]");
    check(&mut h, hold("bob", ev, &["A-1-1"]), "held h_2 [A-1-1]");
    h.now_ms += 1;
    check(&mut h, hold("cat", ev, &["A-1-2"]), "held h_3 [A-1-2]");
    assert_eq!(h.engine.next_due_ms(), Some(T0 + 65_001));
    h.now_ms = T0 + 70_000;
    check(
        &mut h,
        Command::Tick,
        "tick | expired h_1 [A-1-3] | expired h_2 [A-1-1] | expired h_3 [A-1-2]",
    );
}

#[test]
fn release_and_cancel_free_seats_at_once() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 4));
    check(
        &mut h,
        hold("ann", ev, &["A-1-1", "A-1-2"]),
        "held h_1 [A-1-1,A-1-2]",
    );
    check(
        &mut h,
        release("bob", 1),
        "rejected NotFound { what: Hold }",
    );
    check(&mut h, release("ann", 1), "released h_1 [A-1-1,A-1-2]");
    check(
        &mut h,
        release("ann", 1),
        "rejected Conflict { reason: HoldReleased }",
    );
    check(
        &mut h,
        confirm("ann", 1),
        "rejected Conflict { reason: HoldReleased }",
    );
    check(&mut h, hold("bob", ev, &["A-1-1"]), "held h_2 [A-1-1]");
    check(&mut h, confirm("bob", 2), "booked b_1 [A-1-1] 5000c");
    check(
        &mut h,
        confirm("bob", 2),
        "rejected Conflict { reason: HoldAlreadyConfirmed }",
    );
    check(
        &mut h,
        Command::CancelBooking {
            user: "ann".into(),
            booking: BookingId(1),
        },
        "rejected NotFound { what: Booking }",
    );
    check(
        &mut h,
        Command::CancelBooking {
            user: "bob".into(),
            booking: BookingId(1),
        },
        "canceled b_1 [A-1-1]",
    );
    check(
        &mut h,
        Command::CancelBooking {
            user: "bob".into(),
            booking: BookingId(1),
        },
        "rejected Conflict { reason: BookingCanceled }",
    );
    check(&mut h, hold("cat", ev, &["A-1-1"]), "held h_3 [A-1-1]");
}

#[test]
fn a_user_cannot_touch_another_users_hold() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 4));
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(
        &mut h,
        confirm("bob", 1),
        "rejected NotFound { what: Hold }",
    );
    check(
        &mut h,
        confirm("bob", 999),
        "rejected NotFound { what: Hold }",
    );
}

#[test]
fn waitlist_offers_freed_seats_in_fcfs_order() {
    let mut h = Harness::new();
    let ev = h.create(EventSpec {
        hold_ttl_ms: 60_000,
        ..theatre(1, 2)
    });
    check(&mut h, best("ann", ev, 2, true), "held h_1 [A-1-1,A-1-2]");
    check(
        &mut h,
        best_or_wait("bob", ev, 1, false),
        "waitlisted w_1 #1",
    );
    check(
        &mut h,
        best_or_wait("cat", ev, 1, false),
        "waitlisted w_2 #2",
    );
    // More than the venue could ever free: refused, not queued.
    check(
        &mut h,
        best_or_wait("dan", ev, 3, false),
        "rejected SoldOut { category: None, free: 0 }",
    );
    // Ann's hold expires: both seats go to the waiters in arrival order.
    h.now_ms += 65_001;
    check(
        &mut h,
        Command::Tick,
        "tick | expired h_1 [A-1-1,A-1-2] | offered w_1 h_2 [A-1-1] | offered w_2 h_3 [A-1-2]",
    );
    check(&mut h, confirm("bob", 2), "booked b_1 [A-1-1] 5000c");
}

#[test]
fn strict_waitlist_head_blocks_and_skip_ahead_lets_smaller_requests_pass() {
    for (policy, expected) in [
        (WaitlistPolicy::Strict, "released h_1 [A-1-1]"),
        (
            WaitlistPolicy::SkipAhead,
            "released h_1 [A-1-1] | offered w_2 h_3 [A-1-1]",
        ),
    ] {
        let mut h = Harness::new();
        let ev = h.create(EventSpec {
            waitlist_policy: policy,
            ..theatre(1, 3)
        });
        check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
        check(
            &mut h,
            hold("ann", ev, &["A-1-2", "A-1-3"]),
            "held h_2 [A-1-2,A-1-3]",
        );
        check(&mut h, join("bob", ev, 2, true), "joined w_1 #1");
        check(&mut h, join("cat", ev, 1, false), "joined w_2 #2");
        // One seat comes free: bob (head) needs two together.
        check(&mut h, release("ann", 1), expected);
        if policy == WaitlistPolicy::Strict {
            // Nobody passes the head, not even a newcomer.
            check(
                &mut h,
                best("dan", ev, 1, false),
                "rejected SoldOut { category: None, free: 1 }",
            );
            check(&mut h, release("ann", 2), "released h_2 [A-1-2,A-1-3] | offered w_1 h_3 [A-1-1,A-1-2] | offered w_2 h_4 [A-1-3]");
        }
    }
}

#[test]
fn a_group_waiter_gets_seats_together_or_nothing() {
    let mut h = Harness::new();
    let ev = h.create(EventSpec {
        waitlist_policy: WaitlistPolicy::SkipAhead,
        ..theatre(1, 4)
    });
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(&mut h, hold("ann", ev, &["A-1-2"]), "held h_2 [A-1-2]");
    check(&mut h, hold("ann", ev, &["A-1-3"]), "held h_3 [A-1-3]");
    check(&mut h, hold("ann", ev, &["A-1-4"]), "held h_4 [A-1-4]");
    check(&mut h, join("bob", ev, 2, true), "joined w_1 #1");
    check(&mut h, release("ann", 1), "released h_1 [A-1-1]");
    check(&mut h, release("ann", 3), "released h_3 [A-1-3]");
    // Two free seats, but not adjacent: still waiting.
    check(
        &mut h,
        release("ann", 2),
        "released h_2 [A-1-2] | offered w_1 h_5 [A-1-1,A-1-2]",
    );
}

#[test]
fn a_waiter_that_can_never_be_served_ends_sold_out() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 3));
    check(
        &mut h,
        hold("ann", ev, &["A-1-1", "A-1-2"]),
        "held h_1 [A-1-1,A-1-2]",
    );
    check(&mut h, hold("ann", ev, &["A-1-3"]), "held h_2 [A-1-3]");
    check(&mut h, join("bob", ev, 3, false), "joined w_1 #1");
    check(
        &mut h,
        join("cat", ev, 4, false),
        "rejected SoldOut { category: None, free: 0 }",
    );
    // Once held seats become booked, three can never come free.
    check(
        &mut h,
        confirm("ann", 1),
        "booked b_1 [A-1-1,A-1-2] 10000c | ended w_1 SoldOut",
    );
}

// ---- no waiter blocks what it cannot use ---------------------------------------------------

#[test]
fn a_waiter_for_any_category_is_served_from_a_pool_and_the_pool_stays_on_sale() {
    // Reproduction: two seats, sold; a standing pool of 50; one user waits for one place
    // of any category; two Floor places used to be refused `sold_out` with 50 free.
    let mut h = Harness::new();
    let ev = h.create(arena(1, 2, 50));
    check(
        &mut h,
        hold("ann", ev, &["A-1-1", "A-1-2"]),
        "held h_1 [A-1-1,A-1-2]",
    );
    check(&mut h, confirm("ann", 1), "booked b_1 [A-1-1,A-1-2] 10000c");
    // "Any" takes seats first, then pools: the pool has room, so the waiter is served now.
    check(
        &mut h,
        join("bob", ev, 1, false),
        "joined w_1 #1 | offered w_1 h_2 [pool1 x1]",
    );
    check(
        &mut h,
        best_of("cat", ev, 2, Some("Floor"), false),
        "held h_3 [pool1 x2]",
    );
    check(&mut h, best("dan", ev, 3, true), "held h_4 [pool1 x3]");
}

#[test]
fn a_waiter_keeps_only_what_it_could_use() {
    let mut h = Harness::new();
    let ev = h.create(arena(1, 4, 2));
    check(
        &mut h,
        hold("ann", ev, &["A-1-1", "A-1-2", "A-1-3", "A-1-4"]),
        "held h_1 [A-1-1,A-1-2,A-1-3,A-1-4]",
    );
    // Three together: the pool (2 places) could never hold them, only the row can.
    check(&mut h, join("bob", ev, 3, true), "joined w_1 #1");
    // So the pool stays on sale to newcomers, with or without a category ...
    check(
        &mut h,
        best_of("cat", ev, 1, Some("Floor"), false),
        "held h_2 [pool1 x1]",
    );
    check(&mut h, best("dan", ev, 1, false), "held h_3 [pool1 x1]");
    // ... but the row is kept for bob: a free seat is not given to a newcomer.
    check(&mut h, release("cat", 2), "released h_2 [pool1 x1]");
    check(
        &mut h,
        Command::ReleaseHold {
            user: "ann".into(),
            hold: HoldId(1),
        },
        "released h_1 [A-1-1,A-1-2,A-1-3,A-1-4] | offered w_1 h_4 [A-1-1,A-1-2,A-1-3]",
    );
    check(
        &mut h,
        best_of("eve", ev, 1, Some("Standard"), false),
        "held h_5 [A-1-4]",
    );
}

#[test]
fn a_pool_waiter_does_not_stop_the_sale_of_seats() {
    let mut h = Harness::new();
    let ev = h.create(arena(1, 4, 2));
    check(
        &mut h,
        best_of("ann", ev, 2, Some("Floor"), false),
        "held h_1 [pool1 x2]",
    );
    check(
        &mut h,
        join_of("bob", ev, 2, Some("Floor"), false),
        "joined w_1 #1",
    );
    // The Floor queue keeps the pool; seats are sold, also to a request of any category.
    check(&mut h, best("cat", ev, 2, true), "held h_2 [A-1-1,A-1-2]");
    check(
        &mut h,
        best_of("dan", ev, 1, Some("Floor"), false),
        "rejected SoldOut { category: Some(1), free: 0 }",
    );
    check(
        &mut h,
        release("ann", 1),
        "released h_1 [pool1 x2] | offered w_1 h_3 [pool1 x2]",
    );
}

#[test]
fn a_later_waiter_passes_only_with_what_the_earlier_one_cannot_use() {
    let mut h = Harness::new();
    let ev = h.create(arena(1, 4, 2));
    check(
        &mut h,
        hold("ann", ev, &["A-1-1", "A-1-2", "A-1-3", "A-1-4"]),
        "held h_1 [A-1-1,A-1-2,A-1-3,A-1-4]",
    );
    check(
        &mut h,
        best_of("ann", ev, 2, Some("Floor"), false),
        "held h_2 [pool1 x2]",
    );
    check(
        &mut h,
        join_of("bob", ev, 2, Some("Standard"), false),
        "joined w_1 #1",
    );
    check(&mut h, join("cat", ev, 1, false), "joined w_2 #1");
    check(&mut h, join("dan", ev, 1, false), "joined w_3 #2");
    // A place on the floor: bob could never use it, so cat (next in arrival order) gets it.
    check(
        &mut h,
        Command::ReleaseHold {
            user: "ann".into(),
            hold: HoldId(2),
        },
        "released h_2 [pool1 x2] | offered w_2 h_3 [pool1 x1] | offered w_3 h_4 [pool1 x1]",
    );
    check(&mut h, join("eve", ev, 1, false), "joined w_4 #1");
    // The seats come free: bob, first in line for them, takes two; eve gets a third.
    check(
        &mut h,
        release("ann", 1),
        "released h_1 [A-1-1,A-1-2,A-1-3,A-1-4] | offered w_1 h_5 [A-1-1,A-1-2] | offered w_4 h_6 [A-1-3]",
    );
}

#[test]
fn a_together_request_longer_than_every_row_never_waits() {
    // Reproduction: rows of 4; one user waits for 5 together; two of the 12 free seats used
    // to be refused `sold_out`.
    let mut h = Harness::new();
    let ev = h.create(theatre(3, 4));
    check(
        &mut h,
        join("ann", ev, 5, true),
        "rejected SoldOut { category: None, free: 12 }",
    );
    check(
        &mut h,
        best_or_wait("ann", ev, 5, true),
        "rejected SoldOut { category: None, free: 12 }",
    );
    check(&mut h, best("bob", ev, 2, false), "held h_1 [A-1-1,A-1-2]");
    // Five scattered seats are another request: it can be met (the first free seats in
    // rank order, as no row has five).
    check(
        &mut h,
        best("cat", ev, 5, false),
        "held h_2 [A-1-3,A-1-4,A-2-1,A-2-2,A-2-3]",
    );
}

#[test]
fn a_waiter_whose_rows_are_booked_apart_ends_no_row_long_enough() {
    let mut h = Harness::new();
    let ev = h.create(theatre(2, 4));
    check(&mut h, hold("ann", ev, &["A-1-2"]), "held h_1 [A-1-2]");
    check(&mut h, hold("ann", ev, &["A-2-3"]), "held h_2 [A-2-3]");
    // No run of three is free, but both rows could still give one.
    check(&mut h, join("bob", ev, 3, true), "joined w_1 #1");
    check(
        &mut h,
        best("cat", ev, 1, false),
        "rejected SoldOut { category: None, free: 6 }",
    );
    check(&mut h, confirm("ann", 1), "booked b_1 [A-1-2] 5000c");
    // Row 2 is the last that could: once A-2-3 is booked, no row ever will. Three
    // scattered seats could, so the reason is the rows.
    check(
        &mut h,
        confirm("ann", 2),
        "booked b_2 [A-2-3] 5000c | ended w_1 NoRowLongEnough",
    );
    check(&mut h, best("cat", ev, 1, false), "held h_3 [A-1-1]");
    // A booking canceled makes the row whole again for the next one who asks.
    check(
        &mut h,
        Command::CancelBooking {
            user: "ann".into(),
            booking: BookingId(2),
        },
        "canceled b_2 [A-2-3]",
    );
    check(
        &mut h,
        best("dan", ev, 4, true),
        "held h_4 [A-2-1,A-2-2,A-2-3,A-2-4]",
    );
}

#[test]
fn every_waiter_is_checked_when_seats_are_booked_not_only_the_head() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 4));
    check(
        &mut h,
        hold("ann", ev, &["A-1-1", "A-1-2"]),
        "held h_1 [A-1-1,A-1-2]",
    );
    check(
        &mut h,
        hold("ann", ev, &["A-1-3", "A-1-4"]),
        "held h_2 [A-1-3,A-1-4]",
    );
    check(&mut h, join("bob", ev, 2, true), "joined w_1 #1");
    check(&mut h, join("cat", ev, 3, false), "joined w_2 #2");
    check(&mut h, join("dan", ev, 4, true), "joined w_3 #3");
    // Two seats are booked: cat's three and dan's four can never come free; bob, at the
    // head, still can be served.
    check(
        &mut h,
        confirm("ann", 1),
        "booked b_1 [A-1-1,A-1-2] 10000c | ended w_2 SoldOut | ended w_3 SoldOut",
    );
    check(
        &mut h,
        release("ann", 2),
        "released h_2 [A-1-3,A-1-4] | offered w_1 h_3 [A-1-3,A-1-4]",
    );
}

#[test]
fn a_waiter_for_a_sold_pool_is_refused_at_once() {
    let mut h = Harness::new();
    let ev = h.create(arena(1, 2, 3));
    check(
        &mut h,
        best_of("ann", ev, 3, Some("Floor"), false),
        "held h_1 [pool1 x3]",
    );
    check(&mut h, confirm("ann", 1), "booked b_1 [pool1 x3] 6000c");
    // Nothing of its kind is left: no wait, and no queue to keep the seats from others.
    check(
        &mut h,
        join_of("bob", ev, 1, Some("Floor"), false),
        "rejected SoldOut { category: Some(1), free: 0 }",
    );
    // More than the seats and more than any pool: no single kind could ever serve it.
    check(
        &mut h,
        join("bob", ev, 3, false),
        "rejected SoldOut { category: None, free: 2 }",
    );
    check(&mut h, best("cat", ev, 2, true), "held h_2 [A-1-1,A-1-2]");
}

// ---- per-user caps ---------------------------------------------------------------------------

#[test]
fn one_user_holds_at_most_four_waitlist_entries_per_event() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 4));
    let other = h.create(theatre(1, 1));
    check(
        &mut h,
        hold("ann", ev, &["A-1-1", "A-1-2", "A-1-3", "A-1-4"]),
        "held h_1 [A-1-1,A-1-2,A-1-3,A-1-4]",
    );
    check(&mut h, hold("ann", other, &["A-1-1"]), "held h_2 [A-1-1]");
    for (waiter, position) in [(1, 1), (2, 2), (3, 3)] {
        check(
            &mut h,
            join("bob", ev, 1, false),
            &format!("joined w_{waiter} #{position}"),
        );
    }
    check(
        &mut h,
        best_or_wait("bob", ev, 1, false),
        "waitlisted w_4 #4",
    );
    // The fifth entry, whichever way it is asked for.
    check(
        &mut h,
        join("bob", ev, 1, false),
        "rejected LimitExceeded { limit: WaitersPerUser, max: 4 }",
    );
    check(
        &mut h,
        best_or_wait("bob", ev, 2, true),
        "rejected LimitExceeded { limit: WaitersPerUser, max: 4 }",
    );
    // Per user and per event: others, and bob elsewhere, still join.
    check(&mut h, join("cat", ev, 1, false), "joined w_5 #5");
    check(&mut h, join("bob", other, 1, false), "joined w_6 #1");
    // An entry that ends (left, offered, timed out) gives its place back.
    check(&mut h, leave("bob", 2), "left w_2");
    check(&mut h, join("bob", ev, 1, false), "joined w_7 #5");
    check(
        &mut h,
        release("ann", 1),
        "released h_1 [A-1-1,A-1-2,A-1-3,A-1-4] | offered w_1 h_3 [A-1-1] | offered w_3 h_4 [A-1-2] | offered w_4 h_5 [A-1-3] | offered w_5 h_6 [A-1-4]",
    );
    check(&mut h, join("bob", ev, 1, false), "joined w_8 #2");
}

#[test]
fn the_waiter_cap_is_configured() {
    let mut h = Harness::with_config(EngineConfig {
        waiters_per_user_max: 1,
        ..EngineConfig::default()
    });
    let ev = h.create(theatre(1, 1));
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(&mut h, join("bob", ev, 1, false), "joined w_1 #1");
    check(
        &mut h,
        join("bob", ev, 1, false),
        "rejected LimitExceeded { limit: WaitersPerUser, max: 1 }",
    );
}

#[test]
fn waiting_has_a_maximum() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 1));
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(&mut h, join("bob", ev, 1, false), "joined w_1 #1");
    check(
        &mut h,
        Command::LeaveWaitlist {
            user: "cat".into(),
            waiter: WaiterId(1),
        },
        "rejected NotFound { what: Waiter }",
    );
    check(&mut h, join("cat", ev, 1, false), "joined w_2 #2");
    check(
        &mut h,
        Command::LeaveWaitlist {
            user: "cat".into(),
            waiter: WaiterId(2),
        },
        "left w_2",
    );
    h.now_ms += 3_600_001;
    check(
        &mut h,
        Command::Tick,
        "tick | expired h_1 [A-1-1] | offered w_1 h_2 [A-1-1]",
    );
    let mut h = Harness::new();
    let ev = h.create(EventSpec {
        hold_ttl_ms: 7_200_000,
        ..theatre(1, 1)
    });
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(&mut h, join("bob", ev, 1, false), "joined w_1 #1");
    h.now_ms += 3_600_001;
    check(&mut h, Command::Tick, "tick | ended w_1 TimedOut");
}

#[test]
fn waitlist_length_is_bounded() {
    let mut h = Harness::with_config(EngineConfig {
        waitlist_length_max: 2,
        ..EngineConfig::default()
    });
    let ev = h.create(theatre(1, 1));
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(&mut h, join("b", ev, 1, false), "joined w_1 #1");
    check(&mut h, join("c", ev, 1, false), "joined w_2 #2");
    check(
        &mut h,
        join("d", ev, 1, false),
        "rejected LimitExceeded { limit: WaitlistLength, max: 2 }",
    );
}

#[test]
fn canceling_an_event_releases_everything() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 3));
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(
        &mut h,
        hold("bob", ev, &["A-1-2", "A-1-3"]),
        "held h_2 [A-1-2,A-1-3]",
    );
    check(&mut h, confirm("bob", 2), "booked b_1 [A-1-2,A-1-3] 10000c");
    check(&mut h, join("cat", ev, 1, false), "joined w_1 #1");
    check(
        &mut h,
        Command::CancelEvent {
            tenant: "t2".into(),
            event: ev,
        },
        "rejected NotFound { what: Event }",
    );
    check(
        &mut h,
        Command::CancelEvent {
            tenant: "t1".into(),
            event: ev,
        },
        "event canceled holds=[HoldId(1)] bookings=[BookingId(1)] waiters=[WaiterId(1)]",
    );
    check(
        &mut h,
        hold("dan", ev, &["A-1-1"]),
        "rejected Conflict { reason: EventCanceled }",
    );
    check(
        &mut h,
        Command::CancelEvent {
            tenant: "t1".into(),
            event: ev,
        },
        "rejected Conflict { reason: EventCanceled }",
    );
    let availability = h.engine.availability(ev).unwrap();
    assert_eq!(
        (
            availability[0].free,
            availability[0].held,
            availability[0].booked
        ),
        (3, 0, 0)
    );
}

#[test]
fn an_idempotency_key_answers_only_its_own_request_within_the_engine_window() {
    let mut h = Harness::with_config(EngineConfig {
        idempotency_engine_window_ms: 60_000,
        ..EngineConfig::default()
    });
    let ev = h.create(theatre(1, 6));
    let other_ev = h.create(theatre(1, 2));
    // (log time since the previous step, key, command, expected)
    let steps = [
        (0, "k1", best("ann", ev, 2, true), "held h_1 [A-1-1,A-1-2]"),
        // A repeat within the window: the first answer, and nothing is applied.
        (
            59_000,
            "k1",
            best("ann", ev, 2, true),
            "held h_1 [A-1-1,A-1-2] (replayed)",
        ),
        // The same key with another request (another body) is refused, not answered with
        // the first request's result, and nothing is applied.
        (
            0,
            "k1",
            best("ann", ev, 3, true),
            "rejected IdempotencyKeyReused",
        ),
        (
            0,
            "k1",
            best_or_wait("ann", ev, 2, true),
            "rejected IdempotencyKeyReused",
        ),
        (
            0,
            "k1",
            hold("ann", ev, &["A-1-5"]),
            "rejected IdempotencyKeyReused",
        ),
        // Another user's key, or the same key on another event, is another key.
        (0, "k1", best("bob", ev, 2, true), "held h_2 [A-1-3,A-1-4]"),
        (
            0,
            "k1",
            best("ann", other_ev, 2, true),
            "held h_3 [A-1-1,A-1-2]",
        ),
        // A command that names no event is scoped to its user alone.
        (0, "k1", release("ann", 1), "released h_1 [A-1-1,A-1-2]"),
        (0, "k1", release("ann", 3), "rejected IdempotencyKeyReused"),
        (
            0,
            "k1",
            release("ann", 1),
            "released h_1 [A-1-1,A-1-2] (replayed)",
        ),
        // Past the engine's window the engine treats the key as new: a later repeat is
        // the ingress's durable index to answer (or refuse), never the engine's state.
        (
            1_001,
            "k1",
            best("ann", ev, 2, true),
            "held h_4 [A-1-1,A-1-2]",
        ),
        (
            0,
            "k1",
            best("ann", ev, 2, true),
            "held h_4 [A-1-1,A-1-2] (replayed)",
        ),
    ];
    for (elapsed_ms, key, command, expected) in steps {
        h.now_ms += elapsed_ms;
        // What a tick instead of this request would leave: a repeat changes nothing more.
        let mut twin = Engine::from_state(h.engine.config().clone(), h.engine.state().clone());
        twin.apply(h.offset, h.now_ms, &Request::new(Command::Tick));
        let stamp = IdempotencyStamp::of(&command, key);
        let outcome = h.send(Request::with_key(command, key));
        assert_eq!(render(&h.engine, &outcome), expected);
        let first_answer =
            !outcome.replayed && outcome.result != Err(Rejection::IdempotencyKeyReused);
        // Only a first answer is stamped: the ingress indexes exactly those.
        assert_eq!(
            outcome.idempotency,
            stamp.filter(|_| first_answer),
            "{expected}"
        );
        if !first_answer {
            assert_eq!(
                h.engine.state_hash(),
                twin.state_hash(),
                "{expected} changed the state"
            );
        }
    }
    // A tick is the runtime's: a key on it is not remembered.
    let tick = h.send(Request::with_key(Command::Tick, "k1"));
    assert_eq!((tick.replayed, tick.idempotency), (false, None));
}

#[test]
fn the_engine_keeps_at_most_the_configured_number_of_keys() {
    let mut h = Harness::with_config(EngineConfig {
        idempotency_entries_max: 2,
        ..EngineConfig::default()
    });
    let ev = h.create(theatre(1, 6));
    let steps = [
        ("k1", best("ann", ev, 1, true), "held h_1 [A-1-1]"),
        ("k2", best("ann", ev, 1, true), "held h_2 [A-1-2]"),
        ("k3", best("ann", ev, 1, true), "held h_3 [A-1-3]"),
        // k1, the oldest, was forgotten to make room; k2 and k3 are remembered.
        (
            "k3",
            best("ann", ev, 1, true),
            "held h_3 [A-1-3] (replayed)",
        ),
        (
            "k2",
            best("ann", ev, 1, true),
            "held h_2 [A-1-2] (replayed)",
        ),
        ("k1", best("ann", ev, 1, true), "held h_4 [A-1-4]"),
    ];
    for (key, command, expected) in steps {
        let outcome = h.send(Request::with_key(command, key));
        assert_eq!(render(&h.engine, &outcome), expected);
    }
}

#[test]
fn event_updates_change_limits_and_windows_but_not_seats() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 4));
    let patch = EventPatch {
        seats_per_order_max: Some(1),
        sales_close_at_ms: Some(Some(T0 + 1_000)),
        ..EventPatch::default()
    };
    check(
        &mut h,
        Command::UpdateEvent {
            tenant: "t2".into(),
            event: ev,
            patch: Box::new(patch.clone()),
        },
        "rejected NotFound { what: Event }",
    );
    let outcome = h.run(Command::UpdateEvent {
        tenant: "t1".into(),
        event: ev,
        patch: Box::new(patch),
    });
    assert!(matches!(outcome.result, Ok(Reply::EventUpdated { .. })));
    check(
        &mut h,
        best("ann", ev, 2, true),
        "rejected LimitExceeded { limit: SeatsPerOrder, max: 1 }",
    );
    let bad = EventPatch {
        hold_ttl_ms: Some(0),
        ..EventPatch::default()
    };
    check(
        &mut h,
        Command::UpdateEvent {
            tenant: "t1".into(),
            event: ev,
            patch: Box::new(bad),
        },
        r#"rejected Invalid { reason: "hold TTL must be from 1000 to 7200000 ms" }"#,
    );
    h.now_ms += 1_000;
    check(
        &mut h,
        best("ann", ev, 1, true),
        "rejected SalesClosed { reason: Closed }",
    );
}

#[test]
fn invalid_event_specs_are_rejected() {
    let mut h = Harness::new();
    let cases: Vec<(EventSpec, &str)> = vec![
        (
            EventSpec {
                name: " ".into(),
                ..theatre(1, 1)
            },
            "name must not be empty",
        ),
        (
            EventSpec {
                sections: vec![],
                general_admission: vec![],
                ..theatre(1, 1)
            },
            "an event needs seating, general admission, or both",
        ),
        (
            EventSpec {
                categories: vec![],
                ..theatre(1, 1)
            },
            "an event needs from 1 to 64 categories",
        ),
        (
            EventSpec {
                hold_ttl_ms: 7_200_001,
                ..theatre(1, 1)
            },
            "hold TTL must be from 1000 to 7200000 ms",
        ),
        (
            EventSpec {
                seats_per_order_max: 0,
                ..theatre(1, 1)
            },
            "seats per order must be from 1 to 100",
        ),
        (
            theatre(1, 2_000_000),
            "an event has at most 1000000 seats in 100000 rows",
        ),
        (
            EventSpec {
                ends_at_ms: Some(1),
                ..theatre(1, 1)
            },
            "ends_at is before starts_at",
        ),
    ];
    for (spec, reason) in cases {
        let outcome = h.run(Command::CreateEvent {
            tenant: "t1".into(),
            spec: Box::new(spec),
        });
        assert_eq!(
            outcome.result,
            Err(Rejection::Invalid {
                reason: reason.into()
            })
        );
    }
    let mut spec = theatre(1, 1);
    spec.sections[0].rows[0].category = "Nope".into();
    assert_eq!(
        h.run(Command::CreateEvent {
            tenant: "t1".into(),
            spec: Box::new(spec)
        })
        .result,
        Err(Rejection::NotFound {
            what: NotFound::Category
        })
    );
    assert_eq!(h.engine.event_count(), 0);
}

#[test]
fn tickets_check_in_once_and_forgeries_are_not_found() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 2));
    h.hold_seats("ann", ev, &["A-1-1", "A-1-2"]).unwrap();
    let booking = match h.run(confirm("ann", 1)).result {
        Ok(Reply::HoldConfirmed(view)) => view,
        other => panic!("{other:?}"),
    };
    // A booking's tickets follow from it: one per seat, numbered from 1, with the seat.
    let tickets: Vec<TicketView> = booking.tickets().collect();
    let seat = |label: &str| h.engine.seat_label(ev, 0).map(|_| label.to_string());
    assert_eq!(
        tickets
            .iter()
            .map(|ticket| (
                ticket.ticket.to_string(),
                ticket.seat.and_then(|index| h.engine.seat_label(ev, index))
            ))
            .collect::<Vec<_>>(),
        [
            ("t_1_1".to_string(), seat("A-1-1")),
            ("t_1_2".to_string(), seat("A-1-2"))
        ]
    );
    // Codes are derived from ticket ids where they are shown; the engine checks the old
    // by-code record with the same secret.
    let code_of =
        |index: usize| engine::tickets::code(b"demo-ticket-secret", tickets[index].ticket);
    let code = code_of(0);
    let scan = |code: &str| Command::CheckIn {
        tenant: "t1".into(),
        event: ev,
        code: code.into(),
    };
    check(&mut h, scan(&code), "checked in t_1_1");
    check(&mut h, scan(&code), "rejected AlreadyUsed");
    check(
        &mut h,
        scan("t_1_2.0000000000000000"),
        "rejected NotFound { what: Ticket }",
    );
    check(
        &mut h,
        Command::CheckIn {
            tenant: "t2".into(),
            event: ev,
            code: code_of(1),
        },
        "rejected NotFound { what: Event }",
    );
    check(
        &mut h,
        Command::CancelBooking {
            user: "ann".into(),
            booking: BookingId(1),
        },
        "rejected AlreadyUsed",
    );
}

/// `CheckInTicket` (the ingress verified the code and appends the ticket id): the same
/// rules as a check-in by code, and a ticket id that names nothing is not found, never a
/// crash (index 0, past the booking's tickets, an unknown booking, another event).
#[test]
fn check_in_by_ticket_id() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 2));
    let other = h.create(theatre(1, 2));
    h.hold_seats("ann", ev, &["A-1-1", "A-1-2"]).unwrap();
    check(&mut h, confirm("ann", 1), "booked b_1 [A-1-1,A-1-2] 10000c");
    let scan = |tenant: &str, event: EventId, booking: u64, index: u32| Command::CheckInTicket {
        tenant: tenant.into(),
        event,
        ticket: TicketId {
            booking: BookingId(booking),
            index,
        },
    };
    check(&mut h, scan("t1", ev, 1, 2), "checked in t_1_2");
    check(&mut h, scan("t1", ev, 1, 2), "rejected AlreadyUsed");
    for (booking, index) in [(1, 0), (1, 3), (2, 1), (0, 1), (u64::MAX, u32::MAX)] {
        check(
            &mut h,
            scan("t1", ev, booking, index),
            "rejected NotFound { what: Ticket }",
        );
    }
    check(
        &mut h,
        scan("t1", other, 1, 1),
        "rejected NotFound { what: Ticket }",
    );
    check(
        &mut h,
        scan("t2", ev, 1, 1),
        "rejected NotFound { what: Event }",
    );
    check(&mut h, scan("t1", ev, 1, 1), "checked in t_1_1");
}

#[test]
fn undecodable_records_are_rejections_that_still_advance_time() {
    let mut h = Harness::new();
    let ev = h.create(EventSpec {
        hold_ttl_ms: 1_000,
        ..theatre(1, 1)
    });
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    let outcome = h
        .engine
        .apply(h.offset, h.now_ms + 10_000, &Request::new(Command::Tick));
    assert_eq!(outcome.effects.len(), 1);
    let outcome = h
        .engine
        .apply_undecodable(h.offset + 1, h.now_ms, "garbage");
    assert_eq!(
        outcome.result,
        Err(Rejection::Undecodable {
            reason: "garbage".into()
        })
    );
    h.engine.check_invariants();
}

#[test]
#[should_panic(expected = "log offsets must increase")]
fn replaying_an_offset_twice_is_a_bug() {
    let mut engine = Engine::new(EngineConfig::default());
    engine.apply(5, T0, &Request::new(Command::Tick));
    engine.apply(5, T0, &Request::new(Command::Tick));
}

#[test]
fn log_time_never_goes_backwards() {
    let mut h = Harness::new();
    h.now_ms = T0 + 10_000;
    h.run(Command::Tick);
    h.now_ms = T0;
    let outcome = h.run(Command::Tick);
    assert_eq!(outcome.time_ms, T0 + 10_000);
}

#[test]
fn a_promote_record_bumps_the_epoch_for_every_replica() {
    let mut h = Harness::new();
    assert_eq!(h.engine.epoch(), (0, None));
    check(
        &mut h,
        Command::Promote {
            node: "standby-1".into(),
        },
        r#"Promoted { epoch: 1, node: "standby-1" }"#,
    );
    check(
        &mut h,
        Command::Promote { node: "".into() },
        r#"rejected Invalid { reason: "node must not be empty" }"#,
    );
    assert_eq!(h.engine.epoch(), (1, Some("standby-1")));
}

#[test]
fn a_configure_record_changes_nothing_and_a_different_one_is_named_before_it_applies() {
    let mut h = Harness::new();
    let stamp = h.engine.config().stamp();
    let configure = Request::new(Command::Configure {
        stamp: stamp.clone(),
    });
    assert_eq!(h.engine.logged_config_mismatch(&configure), None);
    let mut twin = Engine::from_state(h.engine.config().clone(), h.engine.state().clone());
    twin.apply(h.offset, h.now_ms, &Request::new(Command::Tick));
    check(
        &mut h,
        Command::Configure {
            stamp: stamp.clone(),
        },
        "Configured",
    );
    assert_eq!(
        h.engine.state_hash_hex(),
        twin.state_hash_hex(),
        "it changes no more than a tick"
    );

    let mut other = stamp.clone();
    other.insert("confirm_grace_ms".into(), "1".into());
    let mismatch = h
        .engine
        .logged_config_mismatch(&Request::new(Command::Configure { stamp: other }))
        .expect("another grace is a mismatch");
    assert_eq!(
        (mismatch.key.as_str(), mismatch.applied.as_deref()),
        ("confirm_grace_ms", Some("1"))
    );
    // A key the log does not know (a newer build's) is a mismatch too.
    let mut older = stamp;
    older.remove("waiters_per_user_max");
    let mismatch = h
        .engine
        .logged_config_mismatch(&Request::new(Command::Configure { stamp: older }))
        .unwrap();
    assert_eq!(
        (mismatch.key.as_str(), mismatch.applied),
        ("waiters_per_user_max", None)
    );
    assert_eq!(
        h.engine
            .logged_config_mismatch(&Request::new(Command::Tick)),
        None
    );
}

// ---- service desks -------------------------------------------------------------------------
//
// Desks of 30-minute slots with the default levels (gold 2 h, silver 4 h, bronze 8 h) and an
// 8 h horizon, so a level's window is a handful of slots. `T0` is on an hour boundary.

/// Fills `count` slots of desk 0 with tickets of `level`, one agent each, without checking
/// the lines (the edges are checked by the caller). Each ticket is another user's, so the
/// per-user cap does not stop the filling.
fn fill_desk(h: &mut Harness, level: &str, count: u64) {
    for index in 0..count {
        let outcome = h.run(desk_ticket_of(&format!("filler{index}"), 0, level));
        assert!(
            matches!(outcome.result, Ok(Reply::DeskTicketCreated(_))),
            "{outcome:?}"
        );
    }
}

#[test]
fn each_level_gets_the_last_slot_that_ends_exactly_at_its_deadline() {
    for (level, earlier_slots, last, refused) in [
        (
            "gold",
            3,
            "ticket dt_4 agent 0 +01:30:00..+02:00:00 by +02:00:00",
            "rejected sla_unavailable earliest +02:00:00",
        ),
        (
            "silver",
            7,
            "ticket dt_8 agent 0 +03:30:00..+04:00:00 by +04:00:00",
            "rejected sla_unavailable earliest +04:00:00",
        ),
        (
            "bronze",
            15,
            "ticket dt_16 agent 0 +07:30:00..+08:00:00 by +08:00:00",
            "rejected sla_unavailable earliest +08:00:00",
        ),
    ] {
        let mut h = Harness::new();
        check(
            &mut h,
            create_desk("t1", desk_spec(1, 30)),
            "desk desk_0 of t1",
        );
        fill_desk(&mut h, level, earlier_slots);
        check(&mut h, desk_ticket_of("ann", 0, level), last);
        check(&mut h, desk_ticket_of("bob", 0, level), refused);
    }
}

#[test]
fn each_level_never_gets_the_slot_that_just_started() {
    // One millisecond after a slot boundary: the slot in progress is free but is never
    // given, and the level's window holds one slot fewer.
    for (level, first, earlier_slots, last, refused) in [
        (
            "gold",
            "ticket dt_1 agent 0 +00:30:00..+01:00:00 by +02:00:00.001",
            1,
            "ticket dt_3 agent 0 +01:30:00..+02:00:00 by +02:00:00.001",
            "rejected sla_unavailable earliest +02:00:00",
        ),
        (
            "silver",
            "ticket dt_1 agent 0 +00:30:00..+01:00:00 by +04:00:00.001",
            5,
            "ticket dt_7 agent 0 +03:30:00..+04:00:00 by +04:00:00.001",
            "rejected sla_unavailable earliest +04:00:00",
        ),
        (
            "bronze",
            "ticket dt_1 agent 0 +00:30:00..+01:00:00 by +08:00:00.001",
            13,
            "ticket dt_15 agent 0 +07:30:00..+08:00:00 by +08:00:00.001",
            "rejected sla_unavailable earliest +08:00:00",
        ),
    ] {
        let mut h = Harness::new();
        check(
            &mut h,
            create_desk("t1", desk_spec(1, 30)),
            "desk desk_0 of t1",
        );
        h.now_ms = T0 + 1;
        check(&mut h, desk_ticket_of("ann", 0, level), first);
        fill_desk(&mut h, level, earlier_slots);
        check(&mut h, desk_ticket_of("ann", 0, level), last);
        check(&mut h, desk_ticket_of("bob", 0, level), refused);
    }
}

#[test]
fn a_slot_that_starts_exactly_now_is_given() {
    let mut h = Harness::new();
    check(
        &mut h,
        create_desk("t1", desk_spec(1, 30)),
        "desk desk_0 of t1",
    );
    h.now_ms = T0 + 1_800_000 - 1;
    check(
        &mut h,
        desk_ticket_of("ann", 0, "gold"),
        "ticket dt_1 agent 0 +00:30:00..+01:00:00 by +02:29:59.999",
    );
    h.now_ms = T0 + 1_800_000;
    // dt_1's slot starts now and is taken; the next one is given.
    check(
        &mut h,
        desk_ticket_of("bob", 0, "gold"),
        "ticket dt_2 agent 0 +01:00:00..+01:30:00 by +02:30:00",
    );
    h.now_ms = T0 + 3_600_000;
    check(
        &mut h,
        desk_ticket_of("cat", 0, "gold"),
        "ticket dt_3 agent 0 +01:30:00..+02:00:00 by +03:00:00",
    );
}

#[test]
fn levels_share_the_desk_earliest_slot_first() {
    let mut h = Harness::new();
    check(
        &mut h,
        create_desk("t1", desk_spec(1, 30)),
        "desk desk_0 of t1",
    );
    // Bronze tickets take the earliest slots too: no slot is kept back for gold.
    fill_desk(&mut h, "bronze", 4);
    check(
        &mut h,
        desk_ticket_of("ann", 0, "gold"),
        "rejected sla_unavailable earliest +02:00:00",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 0, "silver"),
        "ticket dt_5 agent 0 +02:00:00..+02:30:00 by +04:00:00",
    );
}

#[test]
fn agents_share_a_slot_and_a_canceled_ticket_returns_its_slot() {
    let mut h = Harness::new();
    check(
        &mut h,
        create_desk("t1", desk_spec(2, 30)),
        "desk desk_0 of t1",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 0, "gold"),
        "ticket dt_1 agent 0 +00:00:00..+00:30:00 by +02:00:00",
    );
    check(
        &mut h,
        desk_ticket_of("bob", 0, "gold"),
        "ticket dt_2 agent 1 +00:00:00..+00:30:00 by +02:00:00",
    );
    fill_desk(&mut h, "gold", 6);
    check(
        &mut h,
        desk_ticket_of("bob", 0, "gold"),
        "rejected sla_unavailable earliest +02:00:00",
    );
    // Only the owner can cancel, and only under the ticket's own desk.
    check(
        &mut h,
        cancel_desk_ticket("bob", 0, 1),
        "rejected NotFound { what: DeskTicket }",
    );
    check(
        &mut h,
        cancel_desk_ticket("ann", 1, 1),
        "rejected NotFound { what: DeskTicket }",
    );
    check(&mut h, cancel_desk_ticket("ann", 0, 1), "canceled dt_1");
    check(
        &mut h,
        cancel_desk_ticket("ann", 0, 1),
        "rejected NotFound { what: DeskTicket }",
    );
    assert_eq!(h.engine.desk_busy_agents(DeskId(0), T0), Some(1));
    check(
        &mut h,
        desk_ticket_of("cat", 0, "gold"),
        "ticket dt_9 agent 0 +00:00:00..+00:30:00 by +02:00:00",
    );
    assert_eq!(h.engine.desk_busy_agents(DeskId(0), T0), Some(2));
}

#[test]
fn a_validated_ticket_holds_its_slot_until_allocated_or_expired() {
    let mut h = Harness::new();
    check(
        &mut h,
        create_desk("t1", desk_spec(1, 30)),
        "desk desk_0 of t1",
    );
    check(
        &mut h,
        validate_desk_ticket("ann", 0, "gold"),
        "ticket dt_1 agent 0 +00:00:00..+00:30:00 by +02:00:00 held to +00:05:00",
    );
    check(
        &mut h,
        desk_ticket_of("bob", 0, "gold"),
        "ticket dt_2 agent 0 +00:30:00..+01:00:00 by +02:00:00",
    );
    check(
        &mut h,
        allocate_desk_ticket("bob", 0, 1),
        "rejected NotFound { what: DeskTicket }",
    );
    check(
        &mut h,
        allocate_desk_ticket("ann", 0, 1),
        "confirmed dt_1 agent 0 +00:00:00..+00:30:00 by +02:00:00",
    );
    check(
        &mut h,
        allocate_desk_ticket("ann", 0, 1),
        "rejected Conflict { reason: DeskTicketAllocated }",
    );
    check(
        &mut h,
        validate_desk_ticket("cat", 0, "gold"),
        "ticket dt_3 agent 0 +01:00:00..+01:30:00 by +02:00:00 held to +00:05:00",
    );
    // At its expiry time the hold still stands; one millisecond later it is gone and
    // its slot is given to the next ticket.
    h.now_ms = T0 + 300_000;
    check(&mut h, Command::Tick, "tick");
    h.now_ms = T0 + 300_001;
    check(&mut h, Command::Tick, "tick | desk hold expired dt_3");
    check(
        &mut h,
        allocate_desk_ticket("cat", 0, 3),
        "rejected NotFound { what: DeskTicket }",
    );
    check(
        &mut h,
        desk_ticket_of("dan", 0, "gold"),
        "ticket dt_4 agent 0 +01:00:00..+01:30:00 by +02:05:00.001",
    );
}

#[test]
fn a_level_longer_than_the_horizon_is_cut_by_the_horizon() {
    let mut h = Harness::new();
    let spec = DeskSpec {
        horizon_ms: 3_600_000,
        ..desk_spec(1, 30)
    };
    check(&mut h, create_desk("t1", spec), "desk desk_0 of t1");
    fill_desk(&mut h, "bronze", 2);
    // Starts exactly at now + horizon: still within it.
    check(
        &mut h,
        desk_ticket_of("ann", 0, "bronze"),
        "ticket dt_3 agent 0 +01:00:00..+01:30:00 by +08:00:00",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 0, "bronze"),
        "rejected sla_unavailable earliest +01:30:00",
    );
}

#[test]
fn one_tenants_full_desk_takes_nothing_from_anothers() {
    let mut h = Harness::new();
    check(
        &mut h,
        create_desk("t1", desk_spec(1, 30)),
        "desk desk_0 of t1",
    );
    check(
        &mut h,
        create_desk("t2", desk_spec(1, 30)),
        "desk desk_1 of t2",
    );
    fill_desk(&mut h, "gold", 4);
    check(
        &mut h,
        desk_ticket_of("ann", 0, "gold"),
        "rejected sla_unavailable earliest +02:00:00",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 1, "gold"),
        "ticket dt_5 agent 0 +00:00:00..+00:30:00 by +02:00:00",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 2, "gold"),
        "rejected NotFound { what: Desk }",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 1, "platinum"),
        "rejected NotFound { what: Level }",
    );
}

#[test]
fn one_user_holds_at_most_four_open_tickets_per_desk() {
    let mut h = Harness::new();
    check(
        &mut h,
        create_desk("t1", desk_spec(1, 30)),
        "desk desk_0 of t1",
    );
    check(
        &mut h,
        create_desk("t1", desk_spec(1, 30)),
        "desk desk_1 of t1",
    );
    for (ticket, slot) in [
        (1, "+00:00:00..+00:30:00"),
        (2, "+00:30:00..+01:00:00"),
        (3, "+01:00:00..+01:30:00"),
    ] {
        check(
            &mut h,
            desk_ticket_of("ann", 0, "bronze"),
            &format!("ticket dt_{ticket} agent 0 {slot} by +08:00:00"),
        );
    }
    // A validated ticket is open too.
    check(
        &mut h,
        validate_desk_ticket("ann", 0, "bronze"),
        "ticket dt_4 agent 0 +01:30:00..+02:00:00 by +08:00:00 held to +00:05:00",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 0, "gold"),
        "rejected LimitExceeded { limit: DeskTicketsPerUser, max: 4 }",
    );
    // Per user and per desk.
    check(
        &mut h,
        desk_ticket_of("bob", 0, "bronze"),
        "ticket dt_5 agent 0 +02:00:00..+02:30:00 by +08:00:00",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 1, "gold"),
        "ticket dt_6 agent 0 +00:00:00..+00:30:00 by +02:00:00",
    );
    // A canceled ticket, an expired validation and a slot that has ended are not open.
    check(&mut h, cancel_desk_ticket("ann", 0, 2), "canceled dt_2");
    check(
        &mut h,
        desk_ticket_of("ann", 0, "bronze"),
        "ticket dt_7 agent 0 +00:30:00..+01:00:00 by +08:00:00",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 0, "bronze"),
        "rejected LimitExceeded { limit: DeskTicketsPerUser, max: 4 }",
    );
    h.now_ms = T0 + 300_001;
    check(
        &mut h,
        desk_ticket_of("ann", 0, "bronze"),
        "ticket dt_8 agent 0 +01:30:00..+02:00:00 by +08:05:00.001 | desk hold expired dt_4",
    );
    h.now_ms = T0 + 1_800_000;
    check(
        &mut h,
        desk_ticket_of("ann", 0, "bronze"),
        "ticket dt_9 agent 0 +02:30:00..+03:00:00 by +08:30:00",
    );
    check(
        &mut h,
        desk_ticket_of("ann", 0, "bronze"),
        "rejected LimitExceeded { limit: DeskTicketsPerUser, max: 4 }",
    );
}

fn terms(currency: &str, hours: Option<u32>, refund: CancellationRefund) -> EventTerms {
    EventTerms {
        currency: currency.into(),
        cancellation: CancellationPolicy {
            until_hours_before_start: hours,
            refund,
        },
    }
}

fn create_with_terms(spec: EventSpec, terms: EventTerms) -> Command {
    Command::CreateEventWithTerms {
        tenant: "t1".into(),
        spec: Box::new(spec),
        draw: None,
        terms: Box::new(terms),
    }
}

fn cancel_booking(user: &str, booking: u64) -> Command {
    Command::CancelBooking {
        user: user.into(),
        booking: BookingId(booking),
    }
}

/// Creates an event with terms and returns its id and the rendered effects.
fn create_event_with_terms(
    h: &mut Harness,
    spec: EventSpec,
    terms: EventTerms,
) -> (EventId, String) {
    let outcome = h.run(create_with_terms(spec, terms));
    let rendered = render(&h.engine, &outcome);
    match outcome.result {
        Ok(Reply::EventCreated { event, .. }) => (
            event,
            rendered
                .split_once(" | ")
                .map_or("", |(_, effects)| effects)
                .to_string(),
        ),
        other => panic!("create failed: {other:?}"),
    }
}

#[test]
fn a_user_may_cancel_until_the_events_cutoff_and_not_at_it() {
    let mut h = Harness::new();
    // The theatre starts 24 hours after T0; cancellations close 12 hours before.
    let (ev, effects) = create_event_with_terms(
        &mut h,
        theatre(1, 4),
        terms("JPY", Some(12), CancellationRefund::None),
    );
    assert_eq!(
        effects,
        "terms of ev_0: JPY cancel until 12h before refund none"
    );
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(&mut h, confirm("ann", 1), "booked b_1 [A-1-1] 5000c");
    check(&mut h, hold("ann", ev, &["A-1-2"]), "held h_2 [A-1-2]");
    check(&mut h, confirm("ann", 2), "booked b_2 [A-1-2] 5000c");
    check(&mut h, cancel_booking("ann", 1), "canceled b_1 [A-1-1]");
    h.now_ms = T0 + 12 * 3_600_000 - 1;
    check(&mut h, hold("bob", ev, &["A-1-1"]), "held h_3 [A-1-1]");
    check(&mut h, confirm("bob", 3), "booked b_3 [A-1-1] 5000c");
    // At the cut-off: refused, nothing changes.
    h.now_ms = T0 + 12 * 3_600_000;
    check(
        &mut h,
        cancel_booking("ann", 2),
        "rejected Conflict { reason: CancellationClosed }",
    );
    check(
        &mut h,
        hold("cat", ev, &["A-1-2"]),
        "rejected seats_unavailable [A-1-2]",
    );
    // The cut-off follows the start as the organiser moves it.
    check(
        &mut h,
        Command::UpdateEvent {
            tenant: "t1".into(),
            event: ev,
            patch: Box::new(EventPatch {
                starts_at_ms: Some(T0 + 48 * 3_600_000),
                ..EventPatch::default()
            }),
        },
        &format!(
            "{:?}",
            Reply::<engine::UserName>::EventUpdated {
                event: ev,
                patch: Box::new(EventPatch {
                    starts_at_ms: Some(T0 + 48 * 3_600_000),
                    ..EventPatch::default()
                }),
            }
        ),
    );
    check(&mut h, cancel_booking("ann", 2), "canceled b_2 [A-1-2]");
    // The organiser's cancellation is not a user's: it ends every booking after any cut-off.
    h.now_ms = T0 + 47 * 3_600_000;
    check(
        &mut h,
        cancel_booking("bob", 3),
        "rejected Conflict { reason: CancellationClosed }",
    );
    check(
        &mut h,
        Command::CancelEvent {
            tenant: "t1".into(),
            event: ev,
        },
        "event canceled holds=[] bookings=[BookingId(3)] waiters=[]",
    );
}

#[test]
fn an_event_without_terms_may_be_canceled_at_any_time() {
    let mut h = Harness::new();
    let ev = h.create(theatre(1, 4));
    check(&mut h, hold("ann", ev, &["A-1-1"]), "held h_1 [A-1-1]");
    check(&mut h, confirm("ann", 1), "booked b_1 [A-1-1] 5000c");
    // After the start, as before terms existed (old logs replay to the same outcomes).
    h.now_ms = T0 + 48 * 3_600_000;
    check(&mut h, cancel_booking("ann", 1), "canceled b_1 [A-1-1]");
}

#[test]
fn bad_terms_are_refused_and_create_nothing() {
    for (bad, reason) in [
        (
            terms("XYZ", None, CancellationRefund::Full),
            "currency: \"XYZ\" is not an ISO 4217 currency code (upper case, like EUR)",
        ),
        (
            terms("eur", None, CancellationRefund::Full),
            "currency: \"eur\" is not an ISO 4217 currency code (upper case, like EUR)",
        ),
        (
            terms(
                "EUR",
                Some(terms::CANCELLATION_HOURS_MAX + 1),
                CancellationRefund::Full,
            ),
            "cancellation.until_hours_before_start: must be from 0 to 8760 hours",
        ),
    ] {
        let mut h = Harness::new();
        check(
            &mut h,
            create_with_terms(theatre(1, 4), bad),
            &format!("rejected Invalid {{ reason: {reason:?} }}"),
        );
        assert_eq!(h.engine.event_count(), 0);
    }
    // With an arrival window too: both effects, terms first.
    let mut h = Harness::new();
    let mut spec = theatre(1, 4);
    spec.sales_open_at_ms = Some(T0 + 3_600_000);
    let outcome = h.run(Command::CreateEventWithTerms {
        tenant: "t1".into(),
        spec: Box::new(spec),
        draw: Some(Box::new(engine::draw::DrawSpec {
            arrival_window_ms: 600_000,
            commitment: engine::draw::commitment_of(&[7; engine::draw::DRAW_BYTES]),
        })),
        terms: Box::new(terms("EUR", Some(0), CancellationRefund::Full)),
    });
    let rendered = render(&h.engine, &outcome);
    assert!(
        rendered.ends_with(" | terms of ev_0: EUR cancel until 0h before refund full | draw of ev_0 opens +00:50:00 draws +01:00:00"),
        "{rendered}"
    );
}
