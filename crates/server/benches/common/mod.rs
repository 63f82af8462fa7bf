//! What the server's benchmarks share: their options and the organisation they simulate.

use std::time::Duration;

use goodhart_sim::evaluate::validated_usage;
use goodhart_sim::org::{Org, OrgSpec};
use goodhart_store::PricedEvent;

pub struct Options {
    pub backends: Vec<String>,
    pub scale: usize,
    pub runs: usize,
}

/// `[--backend sqlite|postgres|both] [--scale N] [--runs N]`: both backends, scale 8 and
/// `runs` runs unless told otherwise.
pub fn options(runs: usize) -> Options {
    let mut o = Options {
        backends: vec!["sqlite".into(), "postgres".into()],
        scale: 8,
        runs,
    };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--backend" if value != "both" => o.backends = vec![value],
            "--backend" => {}
            "--scale" => o.scale = value.parse().expect("--scale N"),
            "--runs" => o.runs = value.parse().expect("--runs N"),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// The waste evaluation's organisation, `scale` times over (8: 280 people, about a million
/// calls in four weeks).
pub fn scaled(scale: usize) -> OrgSpec {
    let base = OrgSpec::waste_evaluation(1);
    OrgSpec {
        teams: base.teams * scale,
        engineers: base.engineers * scale,
        heavy_shippers: base.heavy_shippers * scale,
        light: base.light * scale,
        burners: base.burners * scale,
        outcome_gamers: base.outcome_gamers * scale,
        evasive_burners: base.evasive_burners * scale,
        agent_farms: base.agent_farms * scale,
        ci_shippers: base.ci_shippers * scale,
        ..base
    }
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Two worker threads, as the machine has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The organisation's calls, validated and priced as ingestion would.
pub fn priced_usage(org: &Org) -> Vec<PricedEvent> {
    validated_usage(org)
        .map(|(event, cost)| PricedEvent {
            event,
            cost: Some(cost),
        })
        .collect()
}
