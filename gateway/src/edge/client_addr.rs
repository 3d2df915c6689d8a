//! Which address a request comes from: the TCP peer, unless that peer is a trusted proxy.

use crate::config::GatewayConfig;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The end client's address.
///
/// An untrusted peer is the client, whatever `X-Forwarded-For` says (anyone can send that
/// header). Behind trusted proxies, each proxy appends the address it saw, so the entries are
/// read from the right and the first one that is not a trusted proxy is the client. A garbled
/// entry stops the walk at the last address a trusted proxy vouched for.
pub(crate) fn client_addr(peer: IpAddr, headers: &HeaderMap, cfg: &GatewayConfig) -> IpAddr {
    let peer = peer.to_canonical();
    if !cfg.is_trusted_proxy(peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut vouched = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            return vouched;
        };
        if !cfg.is_trusted_proxy(ip) {
            return ip;
        }
        vouched = ip;
    }
    vouched
}

fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpNet;
    use axum::http::HeaderValue;

    fn cfg(trusted: &[&str]) -> GatewayConfig {
        GatewayConfig {
            trusted_proxies: trusted.iter().filter_map(|s| IpNet::parse(s)).collect(),
            ..GatewayConfig::default()
        }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
        let c = cfg(&["10.0.0.0/8"]);
        let got = client_addr(ip("203.0.113.9"), &xff(&["1.2.3.4"]), &c);
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_always_the_client() {
        let got = client_addr(ip("127.0.0.1"), &xff(&["1.2.3.4"]), &cfg(&[]));
        assert_eq!(got, ip("127.0.0.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_wins() {
        let c = cfg(&["10.0.0.0/8"]);
        // The client forged "6.6.6.6"; the proxy appended the address it really saw.
        let got = client_addr(ip("10.0.0.2"), &xff(&["6.6.6.6, 198.51.100.7"]), &c);
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn chains_of_trusted_proxies_are_skipped_across_repeated_headers() {
        let c = cfg(&["10.0.0.0/8", "192.168.1.1"]);
        let h = xff(&["6.6.6.6, 198.51.100.7", "192.168.1.1", "10.0.0.3"]);
        assert_eq!(client_addr(ip("10.0.0.2"), &h, &c), ip("198.51.100.7"));
    }

    #[test]
    fn a_trusted_proxy_without_the_header_is_itself_the_client() {
        let c = cfg(&["10.0.0.0/8"]);
        assert_eq!(
            client_addr(ip("10.0.0.2"), &HeaderMap::new(), &c),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_vouched_address() {
        let c = cfg(&["10.0.0.0/8"]);
        let h = xff(&["1.2.3.4, not-an-ip, 10.0.0.9"]);
        assert_eq!(client_addr(ip("10.0.0.2"), &h, &c), ip("10.0.0.9"));
    }

    #[test]
    fn entries_with_ports_and_mapped_addresses_are_understood() {
        let c = cfg(&["127.0.0.1"]);
        let got = client_addr(ip("::ffff:127.0.0.1"), &xff(&["[2001:db8::1]:4711"]), &c);
        assert_eq!(got, ip("2001:db8::1"));
    }
}
