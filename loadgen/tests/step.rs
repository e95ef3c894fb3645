//! Step mode's knee rule: which steps count as sustained.

use loadgen::run::step_sustained;

#[test]
fn a_step_under_the_threshold_that_ran_its_full_length_is_sustained() {
    assert!(step_sustained(49_999, 50.0, 0, 20_000, false));
    assert!(
        step_sustained(10_000, 50.0, 200, 20_000, false),
        "1% transport errors is tolerated"
    );
}

#[test]
fn a_slow_or_failing_step_is_not() {
    assert!(!step_sustained(50_000, 50.0, 0, 20_000, false));
    assert!(!step_sustained(10_000, 50.0, 201, 20_000, false));
    assert!(
        !step_sustained(0, 50.0, 0, 0, false),
        "a step with no answers measured nothing"
    );
}

#[test]
fn a_step_cut_short_by_the_scenario_running_out_of_users_is_never_the_knee() {
    // flash-sale at 3,797/s: the last 2,250 users arrived in 0.6 s of an 8 s step.
    assert!(!step_sustained(15_960, 50.0, 0, 2_250, true));
}
