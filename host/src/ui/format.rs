//! Numbers, sizes, times and payloads as a person reads them.

use chrono::{DateTime, Utc};

/// `2026-12-07 12:30:01` (UTC).
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// [`time`], or a dash for a moment that has not come.
pub fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_owned(), time)
}

/// `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `512 B`, `1.5 KiB`, `64.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `850 ms`, `2.4 s`, `3 min 20 s`.
pub fn millis(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// The limits that are set, each as a name and a readable value.
pub fn limits(l: &crate::queue::Limits) -> Vec<(&'static str, String)> {
    [
        ("fuel", l.fuel.map(count)),
        ("timeout", l.timeout_ms.map(millis)),
        ("memory", l.memory_bytes.map(bytes)),
        ("output", l.output_bytes.map(bytes)),
        ("log", l.log_bytes.map(bytes)),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, v)))
    .collect()
}

/// The most of a payload a page shows; the rest is downloaded.
pub const PREVIEW_BYTES: usize = 64 << 10;

/// A job's input or result, shown as what it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Payload {
    /// JSON, pretty-printed.
    Json(String),
    /// UTF-8 text that is not JSON.
    Text(String),
    /// Anything else: only its size is shown, and a download.
    Binary(u64),
    /// Larger than a page shows: its size, and a download.
    Large(u64),
}

impl Payload {
    /// What `data` is.
    pub fn of(data: &[u8]) -> Payload {
        if data.len() > PREVIEW_BYTES {
            return Payload::Large(data.len() as u64);
        }
        match std::str::from_utf8(data) {
            Ok(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value) => Payload::Json(
                    serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_owned()),
                ),
                Err(_) => Payload::Text(text.to_owned()),
            },
            Err(_) => Payload::Binary(data.len() as u64),
        }
    }

    /// The text a page shows, if it shows the payload itself.
    pub fn text(&self) -> Option<&str> {
        match self {
            Payload::Json(t) | Payload::Text(t) => Some(t),
            Payload::Binary(_) | Payload::Large(_) => None,
        }
    }

    /// What the page says instead of showing it.
    pub fn summary(&self) -> String {
        match self {
            Payload::Json(t) => format!("JSON, {}", bytes(t.len() as u64)),
            Payload::Text(t) => format!("text, {}", bytes(t.len() as u64)),
            Payload::Binary(n) => format!("binary, {}", bytes(*n)),
            Payload::Large(n) => format!("{}: too large to show here", bytes(*n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sizes_and_durations_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(2_400), "2.4 s");
        assert_eq!(millis(200_000), "3 min 20 s");
    }

    #[test]
    fn payloads_are_shown_as_what_they_are() {
        assert_eq!(
            Payload::of(br#"{"a":[1,2]}"#),
            Payload::Json("{\n  \"a\": [\n    1,\n    2\n  ]\n}".into())
        );
        assert_eq!(Payload::of(b"hello"), Payload::Text("hello".into()));
        assert_eq!(Payload::of(&[0xff, 0x00]), Payload::Binary(2));
        assert_eq!(
            Payload::of(&vec![b'x'; PREVIEW_BYTES + 1]),
            Payload::Large(65_537)
        );
        assert_eq!(Payload::of(&[0xff]).text(), None);
    }
}
