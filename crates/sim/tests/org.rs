//! The simulated organisation is deterministic, speaks the public formats, and the value board
//! agrees with its ground truth where the volume board does not.

use goodhart_core::outcomes::ValueRules;
use goodhart_sim::evaluate::{board_inputs, priced_usage, score_value};
use goodhart_sim::org::{OrgSpec, Persona, simulate, usage_ndjson};

fn spec(seed: u64) -> OrgSpec {
    OrgSpec {
        seed,
        weeks: 2,
        ..OrgSpec::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_organisation() {
    let (a, b) = (simulate(&spec(7)), simulate(&spec(7)));
    assert_eq!(a.people, b.people);
    assert_eq!(a.deliveries, b.deliveries);
    assert_eq!(usage_ndjson(&a.usage), usage_ndjson(&b.usage));
    assert_ne!(simulate(&spec(8)).people, a.people);
    assert!(
        a.usage.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "time order"
    );
}

#[test]
fn every_record_reads_through_the_public_parsers() {
    let org = simulate(&spec(3));
    // `board_inputs` panics on anything the server would refuse or ignore.
    let inputs = board_inputs(&org, &priced_usage(&org), &ValueRules::default());
    assert!(inputs.credits.iter().any(|c| c.value > 0));
    for line in usage_ndjson(&org.usage[..50]).lines() {
        let _: goodhart_core::usage::UsageEventInput = serde_json::from_str(line).unwrap();
    }
    let events: std::collections::BTreeSet<&str> = org.deliveries.iter().map(|d| d.event).collect();
    assert_eq!(
        events.into_iter().collect::<Vec<_>>(),
        ["deployment_status", "pull_request", "pull_request_review"]
    );
}

#[test]
fn the_value_board_follows_true_value_and_the_volume_board_follows_the_burners() {
    for seed in 1..=3 {
        let org = simulate(&spec(seed));
        let score = score_value(&org, &ValueRules::default());
        let people = score.people;
        assert!(
            score.value_correlation > 0.85,
            "seed {seed}: ρ {}",
            score.value_correlation
        );
        assert!(
            score.volume_correlation < 0.5,
            "seed {seed}: ρ {}",
            score.volume_correlation
        );
        let burners = org.spec.burners;
        assert!(
            score.volume_ranks[&Persona::Burner].iter().all(|&r| r <= burners),
            "seed {seed}: burners top the volume board"
        );
        assert!(
            score.value_ranks[&Persona::Burner].iter().all(|&r| r > people * 3 / 4),
            "seed {seed}: burners are in the value board's last quarter: {:?}",
            score.value_ranks
        );
        let engineers = &score.value_ranks[&Persona::Engineer];
        let median_engineer = engineers[engineers.len() / 2];
        assert!(
            score.value_ranks[&Persona::OutcomeGamer]
                .iter()
                .all(|&r| r > median_engineer),
            "seed {seed}: gaming does not get anyone ahead of a typical honest engineer: {:?}",
            score.value_ranks
        );
    }
}
