//! Scores Goodhart's judgements on simulated organisations over several seeds and prints
//! Markdown tables for `BENCHMARKS.md`.
//!
//! `cargo run --release -p goodhart-sim --bin evaluate -- value [SEEDS]` (default 5 seeds):
//! the value board's rank correlation with each person's true value, and where each board
//! puts the token burners, outcome gamers and heavy-but-productive users.

use goodhart_core::outcomes::ValueRules;
use goodhart_sim::evaluate::score_value;
use goodhart_sim::org::{OrgSpec, Persona, simulate};

fn ranks(ranks: Option<&Vec<usize>>) -> String {
    let mut ranks = ranks.cloned().unwrap_or_default();
    ranks.sort_unstable();
    ranks.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "value".into());
    let seeds: u64 = args.next().map_or(5, |s| s.parse().expect("SEEDS is a number"));
    match what.as_str() {
        "value" => value(seeds),
        other => {
            eprintln!("unknown evaluation `{other}` (try: value)");
            std::process::exit(2);
        }
    }
}

fn value(seeds: u64) {
    let rules = ValueRules::default();
    println!(
        "| seed | people | usage events | ρ value board | ρ volume board | burners: volume ranks | burners: value ranks | gamers: value ranks (true) | heavy shippers: value ranks (true) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let (mut value_sum, mut volume_sum) = (0.0, 0.0);
    for seed in 1..=seeds {
        let org = simulate(&OrgSpec {
            seed,
            ..OrgSpec::default()
        });
        let score = score_value(&org, &rules);
        value_sum += score.value_correlation;
        volume_sum += score.volume_correlation;
        println!(
            "| {seed} | {} | {} | {:.3} | {:.3} | {} | {} | {} ({}) | {} ({}) |",
            score.people,
            org.usage.len(),
            score.value_correlation,
            score.volume_correlation,
            ranks(score.volume_ranks.get(&Persona::Burner)),
            ranks(score.value_ranks.get(&Persona::Burner)),
            ranks(score.value_ranks.get(&Persona::OutcomeGamer)),
            ranks(score.true_ranks.get(&Persona::OutcomeGamer)),
            ranks(score.value_ranks.get(&Persona::HeavyShipper)),
            ranks(score.true_ranks.get(&Persona::HeavyShipper)),
        );
    }
    println!(
        "\nMean ρ over {seeds} seeds: value board {:.3}, volume board {:.3}.",
        value_sum / seeds as f64,
        volume_sum / seeds as f64
    );
}
