//! Who the client is, for the per-address rate limit and caps.
//!
//! The TCP peer is the client, unless the peer is one of the configured trusted proxies
//! (`http.trusted_proxies`, empty by default): then `X-Forwarded-For` is read from the
//! right (the hop the trusted proxy saw) to the left, skipping trusted proxies, and the
//! first address that is not trusted is the client. Anything to its left was written by
//! the client itself and could be forged. An entry that is not an address stops the walk
//! at the nearest trusted hop.
//!
//! IPv6 clients are limited per /64: one host usually has a whole /64, so per-address
//! buckets would give it 2^64 of them.

use axum::http::header::HeaderName;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address (after trusted proxies), set by the edge middleware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddress(pub(crate) IpAddr);

impl ClientAddress {
    /// The key of this client's rate limits and caps: the address itself for IPv4, its
    /// /64 for IPv6.
    pub(crate) fn limit_key(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(address) => IpAddr::V4(address),
            IpAddr::V6(address) => {
                let prefix = u128::from(address) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        }
    }
}

/// Parses a `http.trusted_proxies` entry: a CIDR range (`10.0.0.0/8`, `fd00::/8`) or a
/// single address.
pub fn parse_trusted_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "http.trusted_proxies: {text:?} is not an address or a CIDR range (e.g. 10.0.0.0/8)"
            )
        })
}

fn trusted(address: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|proxy| proxy.contains(&address))
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`,
/// `[::1]:80`), as some proxies write it.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .map(|address| address.to_canonical())
}

/// The client of a request from `peer` with these headers.
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusted(client, proxies) {
        return client;
    }
    // Several X-Forwarded-For headers are one list, in order.
    let values: Vec<&str> = match headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|value| value.to_str())
        .collect::<Result<_, _>>()
    {
        Ok(values) => values,
        Err(_) => return client,
    };
    for entry in values.iter().rev().flat_map(|value| value.rsplit(',')) {
        let Some(hop) = parse_hop(entry) else {
            return client;
        };
        client = hop;
        if !trusted(hop, proxies) {
            return hop;
        }
    }
    // Every hop is a trusted proxy: the left-most one is as close to the client as we get.
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|text| parse_trusted_proxy(text).unwrap())
            .collect()
    }

    #[track_caller]
    fn check(peer: &str, forwarded: &[&str], trusted: &[&str], expected: &str) {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(&X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        let client = client_address(peer.parse().unwrap(), &headers, &proxies(trusted));
        assert_eq!(client, expected.parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        // No trusted proxy: the header is ignored.
        check("203.0.113.9", &["198.51.100.1"], &[], "203.0.113.9");
        // An untrusted peer cannot pick its address.
        check(
            "203.0.113.9",
            &["198.51.100.1"],
            &["10.0.0.0/8"],
            "203.0.113.9",
        );
        // Behind a trusted proxy: the hop it saw.
        check(
            "10.0.0.2",
            &["198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // A forged entry on the left is skipped: the right-most untrusted one counts.
        check(
            "10.0.0.2",
            &["1.1.1.1, 198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // Trusted hops are skipped, across several headers.
        check(
            "10.0.0.2",
            &["1.1.1.1, 198.51.100.1", "10.0.0.7"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // Ports and IPv6 brackets.
        check(
            "10.0.0.2",
            &["[2001:db8::1]:443"],
            &["10.0.0.2"],
            "2001:db8::1",
        );
        check(
            "10.0.0.2",
            &["198.51.100.1:80"],
            &["10.0.0.2/32"],
            "198.51.100.1",
        );
        // Garbage stops the walk at the nearest trusted hop.
        check(
            "10.0.0.2",
            &["198.51.100.1, junk"],
            &["10.0.0.0/8"],
            "10.0.0.2",
        );
        // Only trusted hops: the left-most.
        check(
            "10.0.0.2",
            &["10.0.0.5, 10.0.0.6"],
            &["10.0.0.0/8"],
            "10.0.0.5",
        );
        // No header behind a trusted proxy: the proxy.
        check("10.0.0.2", &[], &["10.0.0.0/8"], "10.0.0.2");
        // An IPv4 peer seen through an IPv6 socket is an IPv4 address.
        check(
            "::ffff:10.0.0.2",
            &["198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let key = |text: &str| ClientAddress(text.parse().unwrap()).limit_key();
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.1"), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    }

    #[test]
    fn trusted_proxies_parse_or_name_the_setting() {
        assert_eq!(
            parse_trusted_proxy("127.0.0.1").unwrap(),
            "127.0.0.1/32".parse::<IpNet>().unwrap()
        );
        assert!(parse_trusted_proxy(" fd00::/8 ").is_ok());
        let error = parse_trusted_proxy("10.0.0.0/33").unwrap_err();
        assert!(error.contains("http.trusted_proxies"), "{error}");
    }
}
