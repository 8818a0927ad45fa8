//! The allow-list grammar and the server's deny ranges.
//!
//! An entry is `scheme://host[:port]`: scheme `http` or `https`; host a DNS name, `*.`
//! and a name (any name below it), `*` (any name), an IPv4 address or a bracketed IPv6
//! one; without a port only the scheme's default port (80, 443) is allowed. Nothing
//! else (paths, user info, queries) is accepted, so an entry means one thing.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS (rustls, the system's roots).
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Name(String),
    /// Any name ending in `.` + this.
    Below(String),
    /// Any name.
    Any,
    /// This address, and only when the request names it as a literal.
    Ip(IpAddr),
}

/// One entry of a module's allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Scheme,
    host: HostPattern,
    port: Option<u16>,
}

/// The host of a request, as the guest named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses the host part of an authority (`example.com`, `1.2.3.4`, `[::1]`).
    pub(crate) fn parse(host: &str) -> Host {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.trim_end_matches('.').to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl AllowedHost {
    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub(crate) fn matches(&self, scheme: Scheme, host: &Host, port: u16) -> bool {
        if self.scheme != scheme || self.port.unwrap_or(scheme.default_port()) != port {
            return false;
        }
        match (&self.host, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Name(n), Host::Name(h)) => n == h,
            (HostPattern::Below(suffix), Host::Name(h)) => h
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostPattern::Ip(ip), Host::Ip(h)) => ip == h,
            _ => false,
        }
    }

    /// Whether this entry names `ip` explicitly, which lets a request reach it even in a
    /// denied range.
    pub(crate) fn names_ip(&self, ip: IpAddr) -> bool {
        self.host == HostPattern::Ip(ip)
    }
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or("it must start with `http://` or `https://`")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(format!("scheme `{other}` is not http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err("it names no host".into());
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err("give only scheme, host and port (no path, query or user)".into());
        }
        let (host, port) = split_port(rest)?;
        let host = parse_pattern(host)?;
        Ok(AllowedHost { scheme, host, port })
    }
}

fn split_port(rest: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let end = v6.find(']').ok_or("an IPv6 address must end with `]`")?;
        let after = &v6[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected `:port` after `]`")?),
        };
        (&rest[..end + 2], port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("port `{p}` is not a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

fn parse_pattern(host: &str) -> Result<HostPattern, String> {
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some(v6) = host.strip_prefix('[') {
        let ip = v6
            .trim_end_matches(']')
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{host}` is not an IPv6 address"))?;
        return Ok(HostPattern::Ip(IpAddr::V6(ip)));
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Ok(HostPattern::Ip(IpAddr::V4(ip)));
    }
    let (below, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    let name = name.to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{host}` is not a host name, `*.` and a name, `*`, or an IP address"
        ));
    }
    if name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("`{host}` is not a valid IPv4 address"));
    }
    Ok(if below {
        HostPattern::Below(name)
    } else {
        HostPattern::Name(name)
    })
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            HostPattern::Name(n) => f.write_str(n)?,
            HostPattern::Below(n) => write!(f, "*.{n}")?,
            HostPattern::Any => f.write_str("*")?,
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            HostPattern::Ip(ip) => write!(f, "{ip}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Most entries in one allow-list.
pub const MAX_ALLOWED_HOSTS: usize = 64;

/// Parses a whole allow-list into its canonical entries (lower case, as
/// [`AllowedHost`] prints them). The error names the entry and what is wrong with it.
pub fn parse_allowed_hosts(entries: &[String]) -> Result<Vec<AllowedHost>, String> {
    if entries.len() > MAX_ALLOWED_HOSTS {
        return Err(format!(
            "{} entries; an allow-list holds at most {MAX_ALLOWED_HOSTS}",
            entries.len()
        ));
    }
    entries
        .iter()
        .map(|e| e.parse().map_err(|why| format!("`{e}`: {why}")))
        .collect()
}

/// Address ranges no request may connect to unless an allow-list entry names the
/// address itself: loopback, private, link-local (cloud metadata), shared and
/// unspecified ones, IPv4 and IPv6.
pub const DEFAULT_DENY: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/3",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// The server's deny ranges (`--outbound-deny`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRanges(Vec<IpNet>);

impl Default for DenyRanges {
    fn default() -> Self {
        Self(
            DEFAULT_DENY
                .iter()
                .map(|r| r.parse().expect("valid default range"))
                .collect(),
        )
    }
}

impl DenyRanges {
    /// Ranges in CIDR notation (`10.0.0.0/8`, `fc00::/7`); a lone address is one host.
    pub fn parse(ranges: &[String]) -> Result<Self, String> {
        ranges
            .iter()
            .map(|r| {
                r.parse::<IpNet>()
                    .or_else(|_| r.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{r}` is not an address range (CIDR, e.g. 10.0.0.0/8)"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The range `ip` falls in, if any. An IPv4-mapped IPv6 address is checked as IPv4.
    pub(crate) fn find(&self, ip: IpAddr) -> Option<&IpNet> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().find(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str) -> AllowedHost {
        s.parse().unwrap()
    }

    fn name(s: &str) -> Host {
        Host::parse(s)
    }

    #[test]
    fn entries_print_canonically() {
        for (given, canonical) in [
            ("https://API.example.com", "https://api.example.com"),
            ("https://*.example.org:8443/", "https://*.example.org:8443"),
            ("http://127.0.0.1:9200", "http://127.0.0.1:9200"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("https://*", "https://*"),
        ] {
            assert_eq!(entry(given).to_string(), canonical);
        }
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (bad, why) in [
            ("example.com", "must start with"),
            ("ftp://example.com", "not http or https"),
            ("https://example.com/path", "no path"),
            ("https://user@example.com", "no path"),
            ("https://example.com:0", "port `0`"),
            ("https://example.com:99999", "port `99999`"),
            ("https://exa mple.com", "not a host name"),
            ("https://", "no host"),
            ("https://1.2.3", "not a valid IPv4"),
            ("http://[::1", "must end with"),
        ] {
            let err = bad.parse::<AllowedHost>().unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn names_match_exactly_or_below_a_wildcard() {
        let exact = entry("https://api.example.com");
        assert!(exact.matches(Scheme::Https, &name("API.example.com."), 443));
        assert!(!exact.matches(Scheme::Https, &name("x.api.example.com"), 443));
        assert!(!exact.matches(Scheme::Http, &name("api.example.com"), 80));
        assert!(!exact.matches(Scheme::Https, &name("api.example.com"), 8443));

        let below = entry("https://*.example.org:8443");
        assert!(below.matches(Scheme::Https, &name("a.example.org"), 8443));
        assert!(below.matches(Scheme::Https, &name("a.b.example.org"), 8443));
        assert!(!below.matches(Scheme::Https, &name("example.org"), 8443));
        assert!(!below.matches(Scheme::Https, &name("badexample.org"), 8443));
        assert!(!below.matches(Scheme::Https, &name("a.example.org"), 443));
    }

    #[test]
    fn an_ip_entry_matches_only_that_literal() {
        let ip = entry("http://127.0.0.1:9200");
        assert!(ip.matches(Scheme::Http, &name("127.0.0.1"), 9200));
        assert!(!ip.matches(Scheme::Http, &name("localhost"), 9200));
        assert!(ip.names_ip("127.0.0.1".parse().unwrap()));
        assert!(!entry("https://*").names_ip("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn default_ranges_cover_loopback_private_and_metadata() {
        let deny = DenyRanges::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(deny.find(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(deny.find(ip.parse().unwrap()).is_none(), "{ip}");
        }
        assert!(DenyRanges::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(DenyRanges::parse(&["203.0.113.7".into()]).is_ok());
    }
}
