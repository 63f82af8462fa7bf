//! The typed form of read queries, and the text forms both the API's query strings and the
//! CLI's flags use (`--from 7d`, `?from=2026-11-01`), parsed in one place so both accept the
//! same things and name the same parameter when they do not.

use goodhart_core::Micros;
use goodhart_core::report::parse_group_by;
use goodhart_core::time::{MICROS_PER_DAY, parse_bound};
use goodhart_core::waste::FindingStatus;
use goodhart_store::SummaryQuery;

use super::AppError;

/// The window a report covers when none is given.
pub const DEFAULT_WINDOW_MICROS: i64 = 30 * MICROS_PER_DAY;

/// A read window `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Micros,
    pub to: Micros,
}

impl Window {
    /// A window from `from`/`to` texts (RFC 3339, dates, or spans back from `now` such as
    /// `7d`): `to` defaults to now, `from` to [`DEFAULT_WINDOW_MICROS`] before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>, now: Micros) -> Result<Window, AppError> {
        let bound = |parameter: &'static str, text: Option<&str>| {
            text.map(|t| parse_bound(t, now).map_err(|message| AppError::InvalidParameter { parameter, message }))
                .transpose()
        };
        let to = bound("to", to)?.unwrap_or(now);
        let from = bound("from", from)?.unwrap_or(Micros(to.0 - DEFAULT_WINDOW_MICROS));
        if from > to {
            return Err(AppError::InvalidParameter {
                parameter: "from",
                message: "`from` is after `to`".into(),
            });
        }
        Ok(Window { from, to })
    }
}

/// A usage summary query from its texts; `now` anchors spans such as `7d`.
pub fn summary_query(
    from: Option<&str>,
    to: Option<&str>,
    group_by: Option<&str>,
    now: Micros,
) -> Result<SummaryQuery, AppError> {
    let Window { from, to } = Window::parse(from, to, now)?;
    let group_by = parse_group_by(group_by.unwrap_or("")).map_err(|message| AppError::InvalidParameter {
        parameter: "group_by",
        message,
    })?;
    Ok(SummaryQuery { from, to, group_by })
}

/// A finding status from its text (`open`, `confirmed` or `dismissed`).
pub fn finding_status(text: &str) -> Result<FindingStatus, AppError> {
    FindingStatus::parse(text).ok_or_else(|| AppError::InvalidParameter {
        parameter: "status",
        message: format!("{text:?} is not a status: open, confirmed or dismissed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let now = Micros(100 * MICROS_PER_DAY);
        let q = summary_query(None, None, None, now).unwrap();
        assert_eq!((q.from, q.to), (Micros(70 * MICROS_PER_DAY), now));
        let bad = summary_query(None, None, Some("user,size"), now);
        assert!(matches!(
            bad,
            Err(AppError::InvalidParameter {
                parameter: "group_by",
                ..
            })
        ));
        assert!(matches!(
            summary_query(Some("1d"), Some("2d"), None, now),
            Err(AppError::InvalidParameter { parameter: "from", .. })
        ));
    }
}
