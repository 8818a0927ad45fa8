//! Human-friendly sizes (`64MiB`) and durations (`30s`), shared by the API (`?wait=`) and
//! the command line. Every parse is total: any text gives a value or an error that says
//! what to write instead, never a panic (a huge, negative or unit-less duration included).

use std::time::Duration;

/// Parses `64MiB`, `512KiB`, `1GiB`, `1M`, `10k` or a plain byte count.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 64MiB, 512KiB or 1048576)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` is too large"))
}

/// Parses `30s`, `500ms`, `2m` or `1h`. A bare number is refused: `30` could mean
/// seconds or milliseconds, and a guess would be wrong for someone.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    duration(s, false)
}

/// [`parse_duration`], also taking a bare number as seconds (command-line flags and
/// `wasmq.toml` values such as `lease = 30` have always meant that).
pub fn parse_duration_or_secs(s: &str) -> Result<Duration, String> {
    duration(s, true)
}

fn duration(s: &str, bare_is_secs: bool) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 30s, 500ms or 2m)"))?;
    let per_unit = match unit.trim() {
        "" if bare_is_secs => 1.0,
        "" => {
            return Err(format!(
                "`{s}` has no unit; write {num}s or {num}ms (units: ms, s, m, h, d)"
            ));
        }
        "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m, h or d)"
            ));
        }
    };
    // `try_from_secs_f64` refuses what `from_secs_f64` panics on: NaN, infinity,
    // negatives and values past `Duration::MAX`.
    Duration::try_from_secs_f64(n * per_unit)
        .map_err(|_| format!("`{s}` is too long a duration (try 30s, 500ms or 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration_or_secs("1.5d").unwrap(),
            Duration::from_secs(129_600)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("10k").unwrap(), 10 << 10);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert!(parse_size("18446744073709551615GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(
            parse_duration_or_secs("1.5").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn bad_durations_are_errors_not_panics() {
        for bad in [
            "999999999999999999999s",
            "999999999999999999999h",
            &format!("{}h", "9".repeat(400)),
            "-5s",
            "nan",
            "NaNs",
            "infs",
            "",
            " ",
            ".s",
            "1..2s",
            "30",
            "1e3s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_duration_or_secs("999999999999999999999").is_err());
    }
}
