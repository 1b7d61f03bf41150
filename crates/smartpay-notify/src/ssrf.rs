//! Where notifications (and OAuth token requests) may go: the SSRF policy of reliability row D8.
//!
//! [`check_url`] checks what the URL itself says: scheme, userinfo, and literal IP hosts (after
//! `url::Url` has normalised spellings such as `0x7f000001`, `2130706433` or `0177.0.0.1` to
//! `127.0.0.1`). [`resolve_checked`] resolves a host name and checks every address it yields.
//! [`address_allowed`] is the address rule both use; it allows only globally routed unicast
//! addresses, plus loopback in the sandbox profile.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Longest notification or token URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Which rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// HTTPS only; no IP literals; no loopback, private, link-local or other special address.
    Production,
    /// Also `http://`, IP literals and loopback (the demo receives notifications locally);
    /// private, link-local (169.254.169.254) and the other special ranges are still refused.
    Sandbox,
}

/// Why a URL is refused. No variant carries the URL (it may hold credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute URL.
    #[error("the URL is not valid")]
    Invalid,
    /// Longer than [`MAX_URL_LEN`].
    #[error("the URL is too long")]
    TooLong,
    /// Not `https` (or, in the sandbox, `http`).
    #[error("the URL's scheme is not allowed")]
    Scheme,
    /// Has a user name or password.
    #[error("the URL must not contain a user name or password")]
    UserInfo,
    /// Has no host.
    #[error("the URL has no host")]
    NoHost,
    /// The host is an IP address (production wants a name).
    #[error("the URL's host must be a name, not an IP address")]
    IpLiteral,
    /// The host is, or resolves to, an address notifications may not go to.
    #[error("the URL's host is or resolves to a forbidden address")]
    ForbiddenAddress,
    /// The host name could not be resolved.
    #[error("the URL's host could not be resolved")]
    Resolve,
    /// The host name resolved to no address.
    #[error("the URL's host has no address")]
    NoAddress,
}

impl UrlError {
    /// A stable `snake_case` code.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlError::Invalid => "invalid_url",
            UrlError::TooLong => "url_too_long",
            UrlError::Scheme => "scheme_not_allowed",
            UrlError::UserInfo => "userinfo_not_allowed",
            UrlError::NoHost => "no_host",
            UrlError::IpLiteral => "ip_literal_not_allowed",
            UrlError::ForbiddenAddress => "forbidden_address",
            UrlError::Resolve => "resolve_failed",
            UrlError::NoAddress => "no_address",
        }
    }
}

/// Checks the URL's syntax, scheme, userinfo and literal IP host for `profile`.
pub fn check_url(url: &str, profile: Profile) -> Result<Url, UrlError> {
    if url.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    let parsed = Url::parse(url).map_err(|_| UrlError::Invalid)?;
    let scheme_ok = match profile {
        Profile::Production => parsed.scheme() == "https",
        Profile::Sandbox => matches!(parsed.scheme(), "https" | "http"),
    };
    if !scheme_ok {
        return Err(UrlError::Scheme);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::UserInfo);
    }
    match parsed.host() {
        None => Err(UrlError::NoHost),
        Some(Host::Domain("")) => Err(UrlError::NoHost),
        Some(Host::Domain(_)) => Ok(()),
        Some(Host::Ipv4(_) | Host::Ipv6(_)) if profile == Profile::Production => Err(UrlError::IpLiteral),
        Some(Host::Ipv4(ip)) => allow(IpAddr::V4(ip), profile),
        Some(Host::Ipv6(ip)) => allow(IpAddr::V6(ip), profile),
    }?;
    Ok(parsed)
}

fn allow(ip: IpAddr, profile: Profile) -> Result<(), UrlError> {
    if address_allowed(ip, profile) { Ok(()) } else { Err(UrlError::ForbiddenAddress) }
}

/// Resolves `url`'s host and checks every address; the addresses to connect to, with the URL's
/// port. A name with any forbidden address is refused as a whole (a name pointing at both a
/// public and a private address is an attack, not a configuration).
pub async fn resolve_checked(url: &Url, profile: Profile) -> Result<Vec<SocketAddr>, UrlError> {
    let port = url.port_or_known_default().ok_or(UrlError::Invalid)?;
    let addrs: Vec<SocketAddr> = match url.host() {
        None => return Err(UrlError::NoHost),
        Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(Host::Domain(name)) => lookup(name, port).await?,
    };
    check_all(addrs, profile)
}

/// Every address of `name` (tokio's resolver, the system's).
pub(crate) async fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>, UrlError> {
    let found = tokio::net::lookup_host((name, port)).await.map_err(|_| UrlError::Resolve)?;
    Ok(found.collect())
}

/// `addrs` if it is non-empty and every address is allowed.
pub(crate) fn check_all(addrs: Vec<SocketAddr>, profile: Profile) -> Result<Vec<SocketAddr>, UrlError> {
    if addrs.is_empty() {
        return Err(UrlError::NoAddress);
    }
    if addrs.iter().all(|a| address_allowed(a.ip(), profile)) { Ok(addrs) } else { Err(UrlError::ForbiddenAddress) }
}

/// Whether notifications may go to `ip` under `profile`: globally routed unicast only, plus
/// loopback in the sandbox.
pub fn address_allowed(ip: IpAddr, profile: Profile) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, profile),
        IpAddr::V6(v6) => v6_allowed(v6, profile),
    }
}

/// IPv4 special-purpose ranges (IANA registry) refused in every profile, as (network, prefix).
const V4_FORBIDDEN: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network", 0.0.0.0
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // CGNAT
    ([169, 254, 0, 0], 16),  // link-local, cloud metadata
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation
    ([203, 0, 113, 0], 24),  // documentation
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, broadcast
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn v4_allowed(ip: Ipv4Addr, profile: Profile) -> bool {
    if ip.is_loopback() {
        return profile == Profile::Sandbox;
    }
    !V4_FORBIDDEN.iter().any(|&(net, prefix)| in_v4(ip, net, prefix))
}

fn v6_allowed(ip: Ipv6Addr, profile: Profile) -> bool {
    let s = ip.segments();
    if ip.is_loopback() {
        return profile == Profile::Sandbox;
    }
    // IPv4-mapped ::ffff:a.b.c.d: the socket talks IPv4 to a.b.c.d.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_allowed(v4, profile);
    }
    // Forms that embed an IPv4 address a relay or translator would reach: IPv4-compatible
    // ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16. Only for a public embedded address.
    if s[..6] == [0; 6] {
        return v4_allowed(embedded_v4(s[6], s[7]), Profile::Production);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_allowed(embedded_v4(s[6], s[7]), Profile::Production);
    }
    if s[0] == 0x2002 {
        return v4_allowed(embedded_v4(s[1], s[2]), Profile::Production);
    }
    global_unicast_v6(s)
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

/// 2000::/3, less its special-purpose blocks: 2001::/23 (Teredo, benchmarking, ORCHID…),
/// 2001:db8::/32 and 3fff::/20 (documentation). Everything outside 2000::/3 (unique local
/// fc00::/7, link-local fe80::/10, multicast ff00::/8, discard 100::/64, local NAT64
/// 64:ff9b:1::/48, unspecified ::) is refused.
fn global_unicast_v6(s: [u16; 8]) -> bool {
    let in_2000_3 = s[0] & 0xe000 == 0x2000;
    let ietf = s[0] == 0x2001 && s[1] < 0x0200;
    let documentation = (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] < 0x1000);
    in_2000_3 && !ietf && !documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses_are_allowed() {
        for a in ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "2a00:1450:4001:80b::200e"] {
            assert!(address_allowed(ip(a), Profile::Production), "{a}");
            assert!(address_allowed(ip(a), Profile::Sandbox), "{a}");
        }
        // Translated forms of a public address are fine.
        for a in ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"] {
            assert!(address_allowed(ip(a), Profile::Production), "{a}");
        }
    }

    #[test]
    fn loopback_only_in_the_sandbox() {
        for a in ["127.0.0.1", "127.255.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!address_allowed(ip(a), Profile::Production), "{a}");
            assert!(address_allowed(ip(a), Profile::Sandbox), "{a}");
        }
    }

    #[test]
    fn special_ranges_are_refused_in_both_profiles() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2001:2::1",
            "3fff::1",
            "64:ff9b:1::1",
            // Embedded forms of forbidden IPv4 addresses, loopback included (even in the sandbox).
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(!address_allowed(ip(a), Profile::Production), "{a}");
            assert!(!address_allowed(ip(a), Profile::Sandbox), "{a}");
        }
    }

    #[test]
    fn range_edges() {
        assert!(address_allowed(ip("172.15.255.255"), Profile::Production));
        assert!(address_allowed(ip("172.32.0.0"), Profile::Production));
        assert!(address_allowed(ip("100.63.255.255"), Profile::Production));
        assert!(address_allowed(ip("100.128.0.0"), Profile::Production));
        assert!(address_allowed(ip("11.0.0.0"), Profile::Production));
        assert!(address_allowed(ip("223.255.255.255"), Profile::Production));
        assert!(address_allowed(ip("2001:200::1"), Profile::Production));
        assert!(address_allowed(ip("3fff:1000::1"), Profile::Production));
    }

    #[test]
    fn the_url_parser_normalises_odd_ipv4_spellings() {
        for spelling in ["0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.1", "127.0.0.1."] {
            let u = Url::parse(&format!("http://{spelling}/")).unwrap();
            assert_eq!(u.host(), Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), "{spelling}");
        }
        let u = Url::parse("http://0xa9.0xfe.0xa9.0xfe/").unwrap();
        assert_eq!(u.host(), Some(Host::Ipv4(Ipv4Addr::new(169, 254, 169, 254))));
        // So a sandbox URL with such a spelling is judged as the address it is.
        assert_eq!(check_url("http://0xa9fea9fe/", Profile::Sandbox), Err(UrlError::ForbiddenAddress));
        assert!(check_url("http://0x7f000001:9/x", Profile::Sandbox).is_ok());
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(UrlError::ForbiddenAddress.as_str(), "forbidden_address");
        assert_eq!(UrlError::Scheme.to_string(), "the URL's scheme is not allowed");
    }
}
