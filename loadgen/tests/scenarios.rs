//! Every shipped scenario parses, validates and round-trips; the three named scenarios
//! have the shapes their descriptions promise; `--scale` keeps them valid.

use loadgen::scenario::{Scenario, ScenarioError};
use std::path::PathBuf;

/// The package directory as cargo gives it to the running test. Read at run time, not
/// compiled in with `env!`: a target directory reused from a clone at another path keeps
/// the old path in compiled code.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

fn scenarios_dir() -> PathBuf {
    manifest_dir().join("../config/scenarios")
}

fn shipped() -> Vec<(PathBuf, Scenario)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("config/scenarios exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "toml")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            (
                path.clone(),
                Scenario::load(&path).unwrap_or_else(|error| panic!("{error}")),
            )
        })
        .collect()
}

fn named(name: &str) -> Scenario {
    shipped()
        .into_iter()
        .map(|(_, scenario)| scenario)
        .find(|scenario| scenario.name == name)
        .unwrap_or_else(|| panic!("no scenario named {name}"))
}

#[test]
fn every_shipped_scenario_parses_and_round_trips() {
    let scenarios = shipped();
    assert!(
        scenarios.len() >= 3,
        "theatre, stadium-onsale and flash-sale are shipped"
    );
    for (path, scenario) in scenarios {
        let text = scenario.to_toml();
        let again = Scenario::parse(&text, "round-trip")
            .unwrap_or_else(|error| panic!("{}: {error}\n{text}", path.display()));
        assert_eq!(again, scenario, "{}", path.display());
        assert_eq!(
            path.file_stem().unwrap().to_str().unwrap(),
            scenario.name,
            "the file is named after the scenario"
        );
    }
}

#[test]
fn every_shipped_scenario_scales_down_and_stays_valid() {
    for (path, scenario) in shipped() {
        for factor in [0.001, 0.01, 0.1, 2.0] {
            let scaled = scenario.scaled(factor);
            scaled
                .validate()
                .unwrap_or_else(|error| panic!("{} at scale {factor}: {error}", path.display()));
            let again = Scenario::parse(&scaled.to_toml(), "scaled").unwrap();
            assert_eq!(again, scaled);
        }
        let tiny = scenario.scaled(0.001);
        assert!(tiny.users.count >= 1 && tiny.seats_total() >= 1);
        assert!(tiny.users.count <= scenario.users.count);
    }
}

#[test]
fn the_named_scenarios_have_their_promised_shapes() {
    let theatre = named("theatre");
    assert_eq!(theatre.event_instances().len(), 200);
    assert!(theatre.events.iter().all(|event| event.capacity() == 2_000));
    assert!(theatre.skew.zipf_exponent > 0.0);
    let mix = &theatre.mix;
    for weight in [
        mix.hold_exact,
        mix.hold_best,
        mix.confirm,
        mix.release,
        mix.cancel,
        mix.waitlist_join,
        mix.read_event,
        mix.read_seats,
    ] {
        assert!(weight > 0.0, "theatre mixes every kind");
    }

    let stadium = named("stadium-onsale");
    assert_eq!(stadium.event_instances().len(), 1);
    assert_eq!(stadium.seats_total(), 50_000);
    assert_eq!(stadium.users.count, 100_000);
    assert!(stadium.users.one_attempt_each && stadium.load.start_at_sales_open);
    assert!(stadium.events[0].sales_open_in_seconds.is_some());
    assert_eq!(
        stadium.holds.wait_probability, 1.0,
        "those who cannot be served are waitlisted"
    );
    // Demand (at least one seat per user) is twice the supply: most users wait.
    assert!(
        stadium.users.count * u64::from(stadium.holds.quantity_min) >= 2 * stadium.seats_total()
    );

    let flash = named("flash-sale");
    let event = &flash.events[0];
    assert!(
        event.sections.is_empty() && !event.general_admission.is_empty(),
        "general admission only"
    );
    assert_eq!(event.max_seats_per_user, Some(1));
    assert_eq!((flash.holds.quantity_min, flash.holds.quantity_max), (1, 1));
    assert_eq!(flash.users.count, 10 * flash.seats_total());
    assert!(flash.users.one_attempt_each);

    // The same sale with an arrival window: the load starts as the window opens, and
    // every hold waits, so each one in the window is an entry into the draw.
    let window = named("flash-sale-window");
    let event = &window.events[0];
    assert_eq!(event.arrival_window_seconds, Some(10));
    assert!(event.sales_open_in_seconds.unwrap() > 10);
    assert!(window.load.start_at_sales_open);
    assert_eq!(window.holds.wait_probability, 1.0);
    assert_eq!(window.seats_total(), flash.seats_total());
}

#[test]
fn an_arrival_window_needs_an_opening_after_setup_and_a_bounded_length() {
    let base = std::fs::read_to_string(scenarios_dir().join("flash-sale-window.toml")).unwrap();
    for (text, expected) in [
        (
            base.replace("sales_open_in_seconds = 15\n", ""),
            "arrival_window_seconds needs sales_open_in_seconds of at least 1",
        ),
        (
            base.replace("sales_open_in_seconds = 15", "sales_open_in_seconds = 0"),
            "arrival_window_seconds needs sales_open_in_seconds of at least 1",
        ),
        (
            base.replace("arrival_window_seconds = 10", "arrival_window_seconds = 0"),
            "arrival_window_seconds must be from 1 to 86400",
        ),
        (
            base.replace(
                "arrival_window_seconds = 10",
                "arrival_window_seconds = 86401",
            ),
            "arrival_window_seconds must be from 1 to 86400",
        ),
    ] {
        let error = Scenario::parse(&text, "case").expect_err(expected);
        assert!(
            error.to_string().contains(expected),
            "{error} should say {expected}"
        );
    }
}

#[test]
fn invalid_scenarios_are_clear_errors() {
    let base = std::fs::read_to_string(scenarios_dir().join("flash-sale.toml")).unwrap();
    let cases = [
        (
            base.replace("rate_per_second = 2000.0", "rate_per_second = 0.0"),
            "rate_per_second",
        ),
        (base.replace("hold_best = 80.0", "hold_best = -1.0"), "mix"),
        (base.replace("capacity = 5000", "capacity = 0"), "capacity"),
        (
            base.replace(
                "name = \"flash-sale\"",
                "name = \"flash-sale\"\nsurprise = 1",
            ),
            "surprise",
        ),
        (
            base.replace(
                "category = \"General\", capacity",
                "category = \"Nope\", capacity",
            ),
            "Nope",
        ),
    ];
    for (text, expected) in cases {
        let error = Scenario::parse(&text, "case").expect_err(expected);
        assert!(matches!(
            error,
            ScenarioError::Parse { .. } | ScenarioError::Invalid { .. }
        ));
        assert!(
            error.to_string().contains(expected) || error.to_string().contains("unknown"),
            "{error} should name {expected}"
        );
    }
}

/// An event template is checked by the engine's one table of spec rules
/// (`engine::spec_rules`), on the body it makes: the error names the API's field.
#[test]
fn event_templates_are_checked_by_the_engine_s_spec_rules() {
    let base = std::fs::read_to_string(scenarios_dir().join("theatre.toml")).unwrap();
    for (text, expected) in [
        (
            base.replace("{ name = \"Stalls\"", "{ name = \"Sta-lls\""),
            "seating.sections[0].name",
        ),
        (
            base.replace(
                "name = \"Circle\", rows = 15",
                "name = \"Stalls\", rows = 15",
            ),
            "seating.sections[1].name",
        ),
        (
            base.replace(
                "rows = 25, seats_per_row = 40",
                "rows = 25, seats_per_row = 0",
            ),
            "seating.sections[0].rows[0].seats",
        ),
        (
            base.replace(
                "rows = 25, seats_per_row = 40",
                "rows = 1000, seats_per_row = 1001",
            ),
            "seating",
        ),
        (
            base.replace("category = \"Balcony\" }", "category = \"Gods\" }"),
            "Gods",
        ),
    ] {
        let error = Scenario::parse(&text, "case").expect_err(expected);
        assert!(
            matches!(error, ScenarioError::Invalid { .. }),
            "{error} is a refusal of the scenario"
        );
        assert!(
            error.to_string().contains(expected),
            "{error} should name {expected}"
        );
    }
}
