//! Cron expressions in an IANA time zone: five fields, or six with seconds first, or an
//! `@hourly`-style name. Daylight-saving changes follow croner: a local time that happens
//! twice fires once (the first), one that is skipped fires at the next valid instant.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed expression and its zone.
#[derive(Clone)]
pub struct CronExpr {
    cron: Cron,
    tz: Tz,
}

/// Why an expression or zone was refused; `field` names the request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// `cron` or `timezone`.
    pub field: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for CronError {}

impl CronExpr {
    /// Parses `expr` for zone `tz` (an IANA name such as `Europe/Paris`, or `UTC`).
    pub fn parse(expr: &str, tz: &str) -> Result<Self, CronError> {
        let tz: Tz = tz.parse().map_err(|_| CronError {
            field: "timezone",
            message: format!("`{tz}` is not an IANA time zone name (e.g. UTC, Europe/Paris)"),
        })?;
        let bad = |message: String| CronError {
            field: "cron",
            message,
        };
        let expr = expr.trim();
        let fields = expr.split_whitespace().count();
        if !expr.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(bad(format!(
                "`{expr}` has {fields} fields; give five (minute hour day month weekday) or six with seconds first"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| bad(format!("`{expr}` is not a cron expression: {e}")))?;
        Ok(Self { cron, tz })
    }

    /// The first instant strictly after `after` that the expression names, or `None` if
    /// it names none (e.g. 30 February).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.trunc_subsecs(0).with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn five_fields_six_with_seconds_and_names() {
        let at = utc(2026, 12, 1, 10, 0, 30);
        let every_min = CronExpr::parse("* * * * *", "UTC").unwrap();
        assert_eq!(every_min.next_after(at), Some(utc(2026, 12, 1, 10, 1, 0)));
        let every_2s = CronExpr::parse("*/2 * * * * *", "UTC").unwrap();
        assert_eq!(every_2s.next_after(at), Some(utc(2026, 12, 1, 10, 0, 32)));
        let hourly = CronExpr::parse("@hourly", "UTC").unwrap();
        assert_eq!(hourly.next_after(at), Some(utc(2026, 12, 1, 11, 0, 0)));
    }

    #[test]
    fn the_zone_moves_the_instant() {
        let at = utc(2026, 12, 1, 0, 0, 0);
        let nine_paris = CronExpr::parse("0 9 * * *", "Europe/Paris").unwrap();
        assert_eq!(nine_paris.next_after(at), Some(utc(2026, 12, 1, 8, 0, 0)));
    }

    #[test]
    fn a_repeated_local_time_fires_once_and_a_skipped_one_at_the_next_instant() {
        // New York falls back on 2026-11-01 at 02:00 EDT: 01:30 happens twice.
        let ny = "America/New_York";
        let half_past_one = CronExpr::parse("30 1 * * *", ny).unwrap();
        let first = half_past_one
            .next_after(utc(2026, 10, 31, 16, 0, 0))
            .unwrap();
        assert_eq!(first, utc(2026, 11, 1, 5, 30, 0));
        assert_eq!(
            half_past_one.next_after(first),
            Some(utc(2026, 11, 2, 6, 30, 0))
        );
        // It springs forward on 2026-03-08 at 02:00: 02:30 does not exist that day.
        let half_past_two = CronExpr::parse("30 2 * * *", ny).unwrap();
        let gap = half_past_two.next_after(utc(2026, 3, 7, 17, 0, 0)).unwrap();
        assert_eq!(
            gap,
            utc(2026, 3, 8, 7, 0, 0),
            "03:00 EDT, the next valid instant"
        );
        assert_eq!(
            half_past_two.next_after(gap),
            Some(utc(2026, 3, 9, 6, 30, 0))
        );
    }

    #[test]
    fn bad_expressions_and_zones_name_their_field() {
        for bad in ["61 * * * *", "* * *", "* * * * * * *", "every day", ""] {
            assert_eq!(
                CronExpr::parse(bad, "UTC").err().unwrap().field,
                "cron",
                "{bad}"
            );
        }
        let e = CronExpr::parse("* * * * *", "Mars/Olympus").err().unwrap();
        assert_eq!(e.field, "timezone");
        assert!(e.message.contains("Mars/Olympus"));
    }
}
