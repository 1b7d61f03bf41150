//! The client's address: the TCP peer, or — when the peer is one of the configured
//! `trusted_proxies` — the address those proxies report in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`. Rate limits and lockouts are keyed on it.
//!
//! The chain is read from the right (the hop nearest to us) and the first address that is not a
//! trusted proxy is the client: a client cannot choose its own address by sending the header,
//! because everything left of the first untrusted hop is the client's own claim.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// Most hops looked at in a forwarding chain (anything longer is cut, from the left).
const MAX_HOPS: usize = 32;

/// An IP address range (`10.0.0.0/8`, `fd00::/8`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `addr` or `addr/prefix`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// From the configuration (validated at load; anything unparsable is ignored here).
    pub fn new(entries: &[String]) -> Self {
        TrustedProxies(entries.iter().filter_map(|e| Cidr::parse(e)).collect())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address for a request that reached us from `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                // An unreadable hop (obfuscated, `unknown`, garbage): stop at the last one we know.
                None => break,
            }
        }
        client
    }
}

/// The addresses of a `Forwarded` header (preferred, RFC 7239) or else of `X-Forwarded-For`,
/// left to right; `None` for a hop that is not an IP address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> =
        headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    let hops: Vec<Option<IpAddr>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim()))
                })?
            })
            .collect()
    } else {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| parse_node(h.trim()))
            .collect()
    };
    let skip = hops.len().saturating_sub(MAX_HOPS);
    hops.into_iter().skip(skip).collect()
}

/// An RFC 7239 node (`192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80`) as an address.
fn parse_node(v: &str) -> Option<IpAddr> {
    let v = v.trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = v.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse::<std::net::Ipv6Addr>().ok().map(|a| IpAddr::V6(a).to_canonical());
    }
    let (host, port) = v.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, axum::http::HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn ranges_contain_their_addresses() {
        let c = Cidr::parse("10.0.0.0/8").unwrap_or(Cidr { net: ip("0.0.0.0"), prefix: 32 });
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped addresses are IPv4");
        assert_eq!(Cidr::parse("fd00::/8").map(|c| c.contains(ip("fd12::1"))), Some(true));
        assert_eq!(Cidr::parse("0.0.0.0/0").map(|c| c.contains(ip("8.8.8.8"))), Some(true));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "x", "10.0.0.0/8/8", "::/129", "10.0.0.0/-1"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let t = TrustedProxies::new(&["10.0.0.1".into()]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(t.client_ip(ip("9.9.9.9"), &h), ip("9.9.9.9"));
        assert_eq!(TrustedProxies::default().client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let t = TrustedProxies::new(&["10.0.0.0/8".into()]);
        // The client put 6.6.6.6 in front itself; the proxy appended the real address.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        let h = headers(&[("forwarded", "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.2")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=198.51.100.1:443")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn unreadable_hops_stop_the_walk_at_the_last_known_address() {
        let t = TrustedProxies::new(&["10.0.0.0/8".into()]);
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.3")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        let h = headers(&[]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }
}
