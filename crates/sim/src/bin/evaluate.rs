//! Scores Goodhart's judgements on simulated organisations over several seeds and prints
//! Markdown tables for `BENCHMARKS.md`.
//!
//! `cargo run --release -p goodhart-sim --bin evaluate -- value [SEEDS]` (default 5 seeds):
//! the value board's rank correlation with each person's true value, and where each board
//! puts the token burners, outcome gamers and heavy-but-productive users.
//!
//! `… -- waste [SEEDS]`: precision and recall of waste findings on the organisation the
//! detectors were written next to.
//!
//! `… -- adversarial [SEEDS]`: recall per evasion strategy and false accusations per hard
//! negative on the adversarial organisation ([`goodhart_sim::adversary`]), then precision,
//! recall and false accusations on the days after the first week, before and after an admin's
//! review of the first week's findings; then the same for the second wave (people who read the
//! README's waste signals and adapt, and honest people whose work looks like them).
//!
//! `… -- second-wave [SEEDS]`: the second wave alone.
//!
//! The adversarial evaluations run detection as the server does, a pass per UTC day
//! ([`Passes::Daily`]); a last argument `window` runs one pass over the whole four weeks
//! instead ([`Passes::Window`]), e.g. `… -- adversarial 5 window`.

#![expect(
    clippy::expect_used,
    clippy::disallowed_methods,
    reason = "a developer's tool: its arguments and environment are its interface, and it stops on bad ones"
)]

use goodhart_core::outcomes::ValueRules;
use goodhart_core::waste::WasteRules;
use goodhart_sim::adversary::{
    AdversarialScore, AdversarySpec, HardNegative, Passes, REVIEWED_DAYS, Role, Strategy, Tally, score,
    simulate as simulate_adversarial,
};
use goodhart_sim::evaluate::{Detection, WasteScore, score_value, score_waste};
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
    let passes = match args.next().as_deref() {
        None | Some("daily") => Passes::Daily,
        Some("window") => Passes::Window,
        Some(other) => {
            eprintln!("unknown passes `{other}` (try: daily, window)");
            std::process::exit(2);
        }
    };
    match what.as_str() {
        "value" => value(seeds),
        "waste" => waste(seeds),
        "adversarial" => {
            adversarial(seeds, passes);
            second_wave(seeds, passes);
        }
        "second-wave" => second_wave(seeds, passes),
        other => {
            eprintln!("unknown evaluation `{other}` (try: value, waste, adversarial, second-wave)");
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

fn waste(seeds: u64) {
    let (value_rules, rules) = (ValueRules::default(), WasteRules::default());
    let mut per_detector: Vec<(u64, WasteScore)> = Vec::new();
    println!(
        "| seed | people | wasteful | calls | flagged | precision | recall | detection time | false positives | missed |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for seed in 1..=seeds {
        let org = simulate(&OrgSpec::waste_evaluation(seed));
        let score = score_waste(&org, &value_rules, &rules);
        let names = |list: &[(String, Persona)]| {
            list.iter()
                .map(|(name, persona)| format!("{name} ({})", persona.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| {seed} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} ms | {} | {} |",
            score.people,
            score.overall.wasteful,
            score.calls,
            score.overall.flagged,
            score.overall.precision(),
            score.overall.recall(),
            score.detection_time.as_secs_f64() * 1e3,
            names(&score.false_positives),
            names(&score.missed),
        );
        per_detector.push((seed, score));
    }
    println!("\nPer detector (people with a finding the detector contributed to), by seed:\n");
    println!("| detector | precision | recall |");
    println!("| --- | --- | --- |");
    if let Some((_, first)) = per_detector.first() {
        for detector in first.by_detector.keys() {
            let cells = |f: fn(&goodhart_sim::evaluate::Detection) -> f64| {
                per_detector
                    .iter()
                    .map(|(_, s)| format!("{:.2}", f(&s.by_detector[detector])))
                    .collect::<Vec<_>>()
                    .join(" / ")
            };
            println!(
                "| {} | {} | {} |",
                detector.as_str(),
                cells(|d| d.precision()),
                cells(|d| d.recall())
            );
        }
    }
    if std::env::var_os("SHOW_FINDINGS").is_some() {
        for (_, score) in &per_detector {
            for finding in score.findings.iter().take(20) {
                println!(
                    "{} {} {:?} {} ${}: {}",
                    finding.user,
                    finding.subject,
                    finding.signals,
                    finding.confidence,
                    finding.wasted.usd_rounded(2),
                    finding.evidence
                );
            }
        }
    }
}

fn adversarial(seeds: u64, passes: Passes) {
    let (value_rules, rules) = (ValueRules::default(), WasteRules::default());
    let scores: Vec<AdversarialScore> = (1..=seeds)
        .map(|seed| {
            score(
                &simulate_adversarial(&AdversarySpec::new(seed)),
                &value_rules,
                &rules,
                passes,
            )
        })
        .collect();
    let seed_columns = (1..=seeds).map(|s| format!(" seed {s} |")).collect::<String>();
    let rule = " --- |".repeat(seeds as usize);
    let cell = |t: &Tally| format!("{}/{}", t.flagged, t.total);
    let sum = |tallies: Vec<Tally>| {
        tallies.iter().fold(Tally::default(), |acc, t| Tally {
            flagged: acc.flagged + t.flagged,
            total: acc.total + t.total,
        })
    };
    println!("Recall per evasion strategy (people caught / people following it; goal ≥ 0.95 on every seed):\n");
    println!("| strategy |{seed_columns} overall | recall |");
    println!("| --- |{rule} --- | --- |");
    for strategy in Strategy::ALL {
        let tallies: Vec<Tally> = scores.iter().map(|s| s.strategies[&strategy]).collect();
        let total = sum(tallies.clone());
        println!(
            "| {} | {} | {} | {:.2} |",
            strategy.as_str(),
            tallies.iter().map(cell).collect::<Vec<_>>().join(" | "),
            cell(&total),
            total.flagged as f64 / total.total.max(1) as f64
        );
    }
    println!("\nFalse accusations per hard negative (people flagged / people; goal 0 on every seed):\n");
    println!("| hard negative |{seed_columns} overall |");
    println!("| --- |{rule} --- |");
    for hard in HardNegative::ALL {
        let tallies: Vec<Tally> = scores.iter().map(|s| s.hard_negatives[&hard]).collect();
        println!(
            "| {} | {} | {} |",
            hard.as_str(),
            tallies.iter().map(cell).collect::<Vec<_>>().join(" | "),
            cell(&sum(tallies.clone()))
        );
    }
    let background: Vec<Tally> = scores
        .iter()
        .map(|s| Tally {
            flagged: s.background_accused.len(),
            total: s.background,
        })
        .collect();
    println!(
        "| background (ordinary engineers) | {} | {} |",
        background.iter().map(cell).collect::<Vec<_>>().join(" | "),
        cell(&sum(background.clone()))
    );
    println!("\n| seed | people | calls | detection time |");
    println!("| --- | --- | --- | --- |");
    for s in &scores {
        println!(
            "| {} | {} | {} | {:.0} ms |",
            s.seed,
            s.people,
            s.calls,
            s.detection_time.as_secs_f64() * 1e3
        );
    }
    feedback(&scores.iter().collect::<Vec<_>>(), &HardNegative::ALL, cell);
    if std::env::var_os("SHOW_FINDINGS").is_some() {
        for s in &scores {
            for finding in &s.findings {
                println!(
                    "seed {} {} {} {:?} {} {}: {}",
                    s.seed,
                    finding.user,
                    finding.subject,
                    finding.signals,
                    finding.confidence,
                    finding.wasted.usd_rounded(2),
                    finding.evidence
                );
            }
        }
    }
}

/// The adversarial evaluation's feedback section: the later days, before and after an admin's
/// review of the first days' findings, for each review period.
fn feedback(scores: &[&AdversarialScore], hard_negatives: &[HardNegative], cell: impl Fn(&Tally) -> String) {
    println!(
        "\nAfter an admin reviews the findings of the first days (dismissing each on someone who is not a \
         waster, confirming each on a waster), people flagged on the remaining days, before → after the \
         decisions (recall out of every waster):\n"
    );
    println!(
        "| days reviewed | seed | confirmed | dismissed | precision | recall | findings dismissed automatically |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (i, days) in REVIEWED_DAYS.iter().enumerate() {
        let (mut before, mut after) = (Detection::default(), Detection::default());
        let (mut confirmed, mut dismissed, mut auto) = (0, 0, 0);
        for s in scores {
            let f = &s.feedback[i];
            println!(
                "| {days} | {} | {} | {} | {:.2} → {:.2} | {:.2} → {:.2} | {} |",
                s.seed,
                f.confirmed,
                f.dismissed,
                f.before.precision(),
                f.after.precision(),
                f.before.recall(),
                f.after.recall(),
                f.auto_dismissed
            );
            for (total, one) in [(&mut before, &f.before), (&mut after, &f.after)] {
                total.flagged += one.flagged;
                total.true_positives += one.true_positives;
                total.wasteful += one.wasteful;
            }
            (confirmed, dismissed, auto) = (
                confirmed + f.confirmed,
                dismissed + f.dismissed,
                auto + f.auto_dismissed,
            );
        }
        println!(
            "| **{days}** | **all** | {confirmed} | {dismissed} | {:.2} → {:.2} | {:.2} → {:.2} | {auto} |",
            before.precision(),
            after.precision(),
            before.recall(),
            after.recall(),
        );
    }
    println!(
        "\nFalse accusations per hard negative on the remaining days, before → after the decisions (all seeds):\n"
    );
    let periods = REVIEWED_DAYS.map(|d| format!(" first {d} days reviewed |")).concat();
    println!("| hard negative |{periods}");
    println!("| --- |{}", " --- |".repeat(REVIEWED_DAYS.len()));
    for &hard in hard_negatives {
        let cells: Vec<String> = (0..REVIEWED_DAYS.len())
            .map(|i| {
                let (mut was, mut is) = (Tally::default(), Tally::default());
                for s in scores {
                    let (b, a) = s.feedback[i].hard_negatives.get(&hard).copied().unwrap_or_default();
                    (was.flagged, was.total) = (was.flagged + b.flagged, was.total + b.total);
                    (is.flagged, is.total) = (is.flagged + a.flagged, is.total + a.total);
                }
                format!("{} → {}", cell(&was), cell(&is))
            })
            .collect();
        println!("| {} | {} |", hard.as_str(), cells.join(" | "));
    }
}

/// The second wave: recall per strategy and false accusations per hard negative, and, for each
/// person of the wave, the signals of their findings (what caught or accused them).
fn second_wave(seeds: u64, passes: Passes) {
    let (value_rules, rules) = (ValueRules::default(), WasteRules::default());
    let runs: Vec<(goodhart_sim::adversary::Adversarial, AdversarialScore)> = (1..=seeds)
        .map(|seed| {
            let adv = simulate_adversarial(&AdversarySpec::second_wave(seed));
            let score = score(&adv, &value_rules, &rules, passes);
            (adv, score)
        })
        .collect();
    let seed_columns = (1..=seeds).map(|s| format!(" seed {s} |")).collect::<String>();
    let rule = " --- |".repeat(seeds as usize);
    let cell = |t: &Tally| format!("{}/{}", t.flagged, t.total);
    let sum = |tallies: &[Tally]| {
        tallies.iter().fold(Tally::default(), |acc, t| Tally {
            flagged: acc.flagged + t.flagged,
            total: acc.total + t.total,
        })
    };
    // The signals of the findings on the people of one role, over every seed.
    let signals_of = |role: Role| {
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for (adv, s) in &runs {
            for name in adv.people_of(role) {
                let mut mine = std::collections::BTreeSet::new();
                for f in s.findings.iter().filter(|f| f.user == name) {
                    let signals: Vec<&str> = f.signals.iter().map(|d| d.as_str()).collect();
                    mine.insert(signals.join("+"));
                }
                for m in mine {
                    *seen.entry(m).or_default() += 1;
                }
            }
        }
        if seen.is_empty() {
            "—".to_owned()
        } else {
            seen.iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    println!(
        "\n## Second wave\n\nRecall per second-wave evasion strategy (people caught / people following it; goal ≥ 0.95 on every seed):\n"
    );
    println!(
        "(The damage of what evades: each person missed spent, on average, the given multiple of an ordinary engineer's median spend in the window.)\n"
    );
    println!("| strategy |{seed_columns} overall | recall | missed people's spend | findings' signals (people) |");
    println!("| --- |{rule} --- | --- | --- | --- |");
    let ordinary = runs.iter().map(|(_, s)| s.background_median_spend.0).sum::<i64>() / seeds.max(1) as i64;
    for strategy in Strategy::SECOND_WAVE {
        let tallies: Vec<Tally> = runs.iter().map(|(_, s)| s.strategies[&strategy]).collect();
        let total = sum(&tallies);
        let missed = total.total - total.flagged;
        let missed_spend: i64 = runs.iter().map(|(_, s)| s.missed_spend[&strategy].0).sum();
        let damage = if missed == 0 {
            "—".to_owned()
        } else {
            format!("{:.1}×", missed_spend as f64 / missed as f64 / ordinary.max(1) as f64)
        };
        println!(
            "| {} | {} | {} | {:.2} | {damage} | {} |",
            strategy.as_str(),
            tallies.iter().map(cell).collect::<Vec<_>>().join(" | "),
            cell(&total),
            total.flagged as f64 / total.total.max(1) as f64,
            signals_of(Role::Evasion(strategy)),
        );
    }
    println!("\nFalse accusations per second-wave hard negative (people flagged / people; goal 0 on every seed):\n");
    println!("| hard negative |{seed_columns} overall | findings' signals (people) |");
    println!("| --- |{rule} --- | --- |");
    for hard in HardNegative::SECOND_WAVE {
        let tallies: Vec<Tally> = runs.iter().map(|(_, s)| s.hard_negatives[&hard]).collect();
        println!(
            "| {} | {} | {} | {} |",
            hard.as_str(),
            tallies.iter().map(cell).collect::<Vec<_>>().join(" | "),
            cell(&sum(&tallies)),
            signals_of(Role::Hard(hard)),
        );
    }
    let background: Vec<Tally> = runs
        .iter()
        .map(|(_, s)| Tally {
            flagged: s.background_accused.len(),
            total: s.background,
        })
        .collect();
    println!(
        "| background (ordinary engineers) | {} | {} | |",
        background.iter().map(cell).collect::<Vec<_>>().join(" | "),
        cell(&sum(&background))
    );
    println!("\n| seed | people | calls | detection time |");
    println!("| --- | --- | --- | --- |");
    for (_, s) in &runs {
        println!(
            "| {} | {} | {} | {:.0} ms |",
            s.seed,
            s.people,
            s.calls,
            s.detection_time.as_secs_f64() * 1e3
        );
    }
    let scores: Vec<&AdversarialScore> = runs.iter().map(|(_, s)| s).collect();
    feedback(&scores, &HardNegative::SECOND_WAVE, cell);
    if std::env::var_os("SHOW_FINDINGS").is_some() {
        for (adv, s) in &runs {
            for finding in &s.findings {
                if matches!(adv.roles.get(&finding.user), Some(Role::Background(_))) {
                    continue;
                }
                println!(
                    "seed {} {} {} {:?} {} {}: {}",
                    s.seed,
                    finding.user,
                    finding.subject,
                    finding.signals,
                    finding.confidence,
                    finding.wasted.usd_rounded(2),
                    finding.evidence
                );
            }
        }
    }
}
