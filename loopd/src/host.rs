//! The `Host` a request names: its name and port, and whether the name is loopback's.

use std::net::IpAddr;

/// `host` as its name (brackets of an IPv6 address removed) and its port, when it has one
/// that is all digits.
pub fn split(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').filter(|port| is_port(port));
        return (name, port);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if is_port(port) => (name, Some(port)),
        _ => (host, None),
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = split(host).0;
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:7700",
            "127.0.0.1",
            "127.0.0.1:7700",
            "[::1]:7700",
            "[::1]",
            "127.1.2.3:1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "",
            "example.com",
            "evil.localhost.example.com:7700",
            "10.0.0.1:7700",
            "[fe80::1]:80",
            "localhost.:80",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn a_host_splits_into_its_name_and_port() {
        assert_eq!(split("127.0.0.1:7700"), ("127.0.0.1", Some("7700")));
        assert_eq!(split("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split("[::1]"), ("::1", None));
        assert_eq!(split("localhost"), ("localhost", None));
        assert_eq!(split("host:"), ("host:", None));
        assert_eq!(split("host:8x"), ("host:8x", None));
    }
}
