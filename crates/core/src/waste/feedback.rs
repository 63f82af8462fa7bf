//! Admins' decisions on earlier findings, applied to new ones, so that a decision speaks for
//! the pattern and not only for one day's finding.
//!
//! Findings are kept per subject, detector and UTC day, so a person whose dismissed pattern
//! goes on (a load test they were asked to run, say) would otherwise get a new open finding,
//! and an alert, every day. [`review`] judges each new finding against the decisions an admin
//! made on the same subject's findings of the [`FeedbackRules::memory`] before its day:
//!
//! - **Covered by a dismissal** ([`Verdict::Covered`]): an admin dismissed a finding of the
//!   same subject (kind, name and person) from an earlier day, whose signals include every
//!   signal of the new one — nothing the admin has not seen already — and the new finding
//!   wasted at most [`FeedbackRules::size_factor`] times as much. The caller records it
//!   dismissed, with a note naming the decision, so nothing is hidden: it raises no alert and
//!   stops counting as waste, and an admin can still confirm it.
//! - **A repeat of a confirmed pattern** ([`Verdict::Repeat`]): an admin confirmed a finding
//!   of the same subject from an earlier day that shares a signal with the new one. Its
//!   confidence is raised (see [`REPEAT_BONUS`]) and its evidence names the confirmed finding.
//! - Otherwise the finding stands as detected ([`Verdict::Unchanged`]).
//!
//! When both a dismissal and a confirmation speak for a finding, the later one (by the day of
//! the finding decided) wins: the admin's newest word on the pattern.
//!
//! Only an admin's decisions count, never those made automatically by this review: otherwise a
//! dismissal would renew itself day after day past the memory, and each day's finding could
//! grow by the size factor over the last one's.

use super::model::{Finding, FindingStatus};
use crate::Micros;
use crate::time::MICROS_PER_DAY;

/// How far admins' decisions reach (the defaults are documented in the README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRules {
    /// A decision speaks for the subject's findings of days up to this long after the day of
    /// the finding decided (counted back from the start of a new finding's day).
    pub memory: i64,
    /// A dismissal covers a later finding only if that one wasted at most this many times as
    /// much: the admin accepted spend of a size, not a blank cheque. Three leaves room for a
    /// busier day of the same work (a load test run longer, a migration over more tables)
    /// while a pattern that has grown into something else fires again.
    pub size_factor: i64,
}

impl Default for FeedbackRules {
    fn default() -> FeedbackRules {
        FeedbackRules {
            memory: 30 * MICROS_PER_DAY,
            size_factor: 3,
        }
    }
}

/// Confidence added, in thousandths, to a finding that repeats a confirmed pattern (on top of
/// the higher of its own and the confirmed finding's, at most 1000): an admin has already
/// judged the same behaviour of the same subject to be waste.
pub const REPEAT_BONUS: u32 = 100;

/// An admin's decision on an earlier finding.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub finding: &'a Finding,
    /// `Confirmed` or `Dismissed`; an open finding is no decision and is ignored.
    pub status: FindingStatus,
    pub decided_at: Micros,
    /// The admin's reason, quoted in the note of the findings a dismissal covers.
    pub note: Option<&'a str>,
}

/// What earlier decisions make of a new finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No decision speaks for it: it stands as detected.
    Unchanged,
    /// An admin dismissed the same pattern (finding `by`): record it dismissed with `note`.
    Covered { by: String, note: String },
    /// Repeats a pattern an admin confirmed (finding `of`): its confidence and evidence say so.
    Repeat { of: String },
}

/// A new finding after review: adjusted if it repeats a confirmed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewed {
    pub finding: Finding,
    pub verdict: Verdict,
}

/// Judges each of `findings` against admins' earlier `decisions` (see the module docs).
pub fn review(findings: Vec<Finding>, decisions: &[Decision<'_>], rules: &FeedbackRules) -> Vec<Reviewed> {
    findings
        .into_iter()
        .map(|finding| review_one(finding, decisions, rules))
        .collect()
}

fn review_one(mut finding: Finding, decisions: &[Decision<'_>], rules: &FeedbackRules) -> Reviewed {
    let day = finding.from.floor_to(MICROS_PER_DAY);
    let remembered_from = day.0.saturating_sub(rules.memory);
    // Decisions are ordered by the day of the finding decided, then by when.
    let order = |d: &Decision<'_>| (d.finding.from, d.decided_at);
    let earlier = decisions
        .iter()
        .filter(|d| same_subject(d.finding, &finding) && d.finding.from < day && d.finding.from.0 >= remembered_from);
    // The newest decision of each kind that speaks for the finding.
    let newest = |status: FindingStatus, applies: &dyn Fn(&Finding) -> bool| {
        earlier
            .clone()
            .filter(|d| d.status == status && applies(d.finding))
            .max_by_key(|d| order(d))
    };
    let dismissal = newest(FindingStatus::Dismissed, &|dismissed| {
        covers(dismissed, &finding, rules)
    });
    let confirmation = newest(FindingStatus::Confirmed, &|confirmed| overlaps(confirmed, &finding));
    let verdict = match (dismissal, confirmation) {
        (Some(d), c) if c.is_none_or(|c| order(d) > order(c)) => {
            let reason = d.note.map(|n| format!(" (“{n}”)")).unwrap_or_default();
            Verdict::Covered {
                by: d.finding.id.clone(),
                note: format!(
                    "dismissed automatically: the same pattern as finding {}, dismissed on {} by an admin{reason}",
                    d.finding.id,
                    d.decided_at.utc_day()
                ),
            }
        }
        (_, Some(c)) => {
            let raised = finding.confidence.max(c.finding.confidence) + REPEAT_BONUS;
            finding.confidence = raised.min(1000);
            finding.evidence = format!(
                "{}; the same pattern as finding {}, confirmed on {}",
                finding.evidence,
                c.finding.id,
                c.decided_at.utc_day()
            );
            Verdict::Repeat {
                of: c.finding.id.clone(),
            }
        }
        _ => Verdict::Unchanged,
    };
    Reviewed { finding, verdict }
}

fn same_subject(a: &Finding, b: &Finding) -> bool {
    a.subject_kind == b.subject_kind && a.subject == b.subject && a.user == b.user
}

/// Whether a dismissal of `dismissed` speaks for `new`: no signal the admin did not see, and
/// not much larger.
fn covers(dismissed: &Finding, new: &Finding, rules: &FeedbackRules) -> bool {
    new.signals.iter().all(|s| dismissed.signals.contains(s))
        && new.wasted.0 <= dismissed.wasted.0.saturating_mul(rules.size_factor)
}

fn overlaps(confirmed: &Finding, new: &Finding) -> bool {
    new.signals.iter().any(|s| confirmed.signals.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Nanos;
    use crate::waste::Detector::{self, AgentFanOut, FillerOutput, OffHours, RepeatedPrompts};

    /// Monday 2 November 2026, 22:00 UTC.
    const MONDAY_NIGHT: i64 = 20_759 * MICROS_PER_DAY + 22 * 3_600_000_000;

    /// Bob's loop agent on day `day` (0 is Monday), wasting `cents`, with `signals`.
    fn bobs(day: i64, cents: i64, signals: &[Detector]) -> Finding {
        Finding {
            signals: signals.to_vec(),
            ..Finding::sample(
                "bob",
                Some("loop-agent"),
                Micros(MONDAY_NIGHT + day * MICROS_PER_DAY),
                Nanos(cents * 10_000_000),
            )
        }
    }

    const LOOP: [Detector; 2] = [RepeatedPrompts, OffHours];

    fn decided(finding: &Finding, status: FindingStatus) -> Decision<'_> {
        Decision {
            finding,
            status,
            decided_at: Micros(finding.to.0 + 10 * 3_600_000_000),
            note: Some("load test we asked for"),
        }
    }

    fn verdict(new: Finding, decisions: &[Decision<'_>]) -> Verdict {
        review(vec![new], decisions, &FeedbackRules::default())
            .remove(0)
            .verdict
    }

    fn covered(v: &Verdict) -> bool {
        matches!(v, Verdict::Covered { .. })
    }

    #[test]
    fn a_dismissed_pattern_covers_the_same_subjects_later_findings_with_a_note() {
        let monday = bobs(0, 100, &LOOP);
        let decisions = [decided(&monday, FindingStatus::Dismissed)];
        let tuesday = bobs(1, 120, &LOOP);
        assert_eq!(
            verdict(tuesday.clone(), &decisions),
            Verdict::Covered {
                by: monday.id.clone(),
                note: format!(
                    "dismissed automatically: the same pattern as finding {}, dismissed on 2026-11-03 by an admin \
                     (“load test we asked for”)",
                    monday.id
                ),
            }
        );
        let fewer_signals = bobs(1, 100, &[RepeatedPrompts]);
        assert!(covered(&verdict(fewer_signals, &decisions)), "nothing new to see");
        let reviewed = review(vec![tuesday.clone()], &decisions, &FeedbackRules::default());
        assert_eq!(reviewed[0].finding, tuesday, "a covered finding keeps its numbers");
    }

    #[test]
    fn a_dismissal_does_not_cover_near_misses() {
        let monday = bobs(0, 100, &LOOP);
        let decisions = [decided(&monday, FindingStatus::Dismissed)];
        let rules = FeedbackRules::default();
        let unchanged = |new: Finding, why: &str| {
            assert_eq!(verdict(new, &decisions), Verdict::Unchanged, "{why}");
        };
        unchanged(
            Finding {
                user: "ann".into(),
                ..bobs(1, 100, &LOOP)
            },
            "the same agent name, another person",
        );
        unchanged(
            Finding {
                subject_kind: crate::waste::SubjectKind::User,
                subject: "bob".into(),
                ..bobs(1, 100, &LOOP)
            },
            "the person rather than their agent",
        );
        unchanged(
            Finding {
                subject: "other-agent".into(),
                ..bobs(1, 100, &LOOP)
            },
            "another agent of the same person",
        );
        unchanged(bobs(31, 100, &LOOP), "a day past the memory");
        assert!(
            covered(&verdict(bobs(30, 100, &LOOP), &decisions)),
            "the memory's last day"
        );
        unchanged(
            bobs(1, 100, &[RepeatedPrompts, FillerOutput, OffHours]),
            "a signal the admin never saw",
        );
        unchanged(bobs(1, 301, &LOOP), "more than three times the waste");
        assert!(
            covered(&verdict(bobs(1, 300, &LOOP), &decisions)),
            "exactly three times"
        );
        unchanged(bobs(0, 100, &LOOP), "the same day: not a later finding");
        unchanged(bobs(-1, 100, &LOOP), "a finding of a day before the dismissed one");
        assert_eq!(rules.size_factor, 3);
    }

    #[test]
    fn a_repeat_of_a_confirmed_pattern_gains_confidence_and_says_so() {
        let monday = Finding {
            confidence: 850,
            ..bobs(0, 100, &LOOP)
        };
        let decisions = [decided(&monday, FindingStatus::Confirmed)];
        let wednesday = Finding {
            confidence: 700,
            ..bobs(2, 900, &[RepeatedPrompts, FillerOutput])
        };
        let reviewed = review(vec![wednesday.clone()], &decisions, &FeedbackRules::default()).remove(0);
        assert_eq!(reviewed.verdict, Verdict::Repeat { of: monday.id.clone() });
        assert_eq!(reviewed.finding.confidence, 950, "the confirmed one's 850, plus 100");
        assert_eq!(
            reviewed.finding.evidence,
            format!(
                "{}; the same pattern as finding {}, confirmed on 2026-11-03",
                wednesday.evidence, monday.id
            )
        );
        let sure = Finding {
            confidence: 950,
            ..wednesday.clone()
        };
        let capped = review(vec![sure], &decisions, &FeedbackRules::default()).remove(0);
        assert_eq!(capped.finding.confidence, 1000, "at most 1000");
        assert_eq!(
            verdict(bobs(2, 100, &[AgentFanOut, FillerOutput]), &decisions),
            Verdict::Unchanged,
            "no signal in common"
        );
        assert_eq!(
            verdict(bobs(31, 100, &LOOP), &decisions),
            Verdict::Unchanged,
            "forgotten"
        );
    }

    #[test]
    fn the_admins_newest_word_on_a_pattern_wins() {
        let (monday, wednesday) = (bobs(0, 100, &LOOP), bobs(2, 100, &LOOP));
        let changed_mind = [
            decided(&monday, FindingStatus::Dismissed),
            decided(&wednesday, FindingStatus::Confirmed),
        ];
        assert_eq!(
            verdict(bobs(4, 100, &LOOP), &changed_mind),
            Verdict::Repeat {
                of: wednesday.id.clone()
            }
        );
        let relented = [
            decided(&monday, FindingStatus::Confirmed),
            decided(&wednesday, FindingStatus::Dismissed),
        ];
        assert!(covered(&verdict(bobs(4, 100, &LOOP), &relented)));
        assert!(
            matches!(verdict(bobs(1, 100, &LOOP), &relented), Verdict::Repeat { .. }),
            "Tuesday's finding predates Wednesday's dismissal"
        );
        let open = [decided(&monday, FindingStatus::Open)];
        assert_eq!(verdict(bobs(1, 100, &LOOP), &open), Verdict::Unchanged, "no decision");
    }
}
