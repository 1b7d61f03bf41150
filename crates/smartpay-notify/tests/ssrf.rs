//! Reliability row D8: the URL policy for notification and OAuth token URLs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use smartpay_notify::{Profile, UrlError, check_url, resolve_checked};

#[test]
fn production_refuses_every_d8_url() {
    let cases = [
        ("http://example.com", UrlError::Scheme),
        ("https://127.0.0.1", UrlError::IpLiteral),
        ("https://[::1]", UrlError::IpLiteral),
        ("https://169.254.169.254", UrlError::IpLiteral),
        ("https://0x7f000001", UrlError::IpLiteral),
        ("https://2130706433", UrlError::IpLiteral),
        ("https://0177.0.0.1", UrlError::IpLiteral),
        ("https://10.0.0.1", UrlError::IpLiteral),
        ("https://172.16.0.1", UrlError::IpLiteral),
        ("https://192.168.1.1", UrlError::IpLiteral),
        ("https://[fe80::1]", UrlError::IpLiteral),
        ("https://[::ffff:127.0.0.1]", UrlError::IpLiteral),
        ("https://100.64.0.1", UrlError::IpLiteral),
        ("https://0.0.0.0", UrlError::IpLiteral),
        ("https://8.8.8.8", UrlError::IpLiteral),
        ("https://user:pw@example.com", UrlError::UserInfo),
        ("https://user@example.com", UrlError::UserInfo),
        ("ftp://x", UrlError::Scheme),
        ("file:///etc/passwd", UrlError::Scheme),
        ("gopher://example.com", UrlError::Scheme),
        ("example.com/hook", UrlError::Invalid),
        ("https://", UrlError::Invalid),
        ("", UrlError::Invalid),
    ];
    for (url, why) in cases {
        assert_eq!(check_url(url, Profile::Production).map(|_| ()), Err(why), "{url}");
    }
    let long = format!("https://example.com/{}", "a".repeat(3000));
    assert_eq!(check_url(&long, Profile::Production).map(|_| ()), Err(UrlError::TooLong));
}

#[test]
fn production_accepts_an_https_name() {
    let u = check_url("https://example.com/hook", Profile::Production).unwrap();
    assert_eq!(u.as_str(), "https://example.com/hook");
    assert!(check_url("https://Hooks.Example.COM:8443/a?b=c", Profile::Production).is_ok());
}

#[test]
fn sandbox_allows_http_and_loopback_but_not_private_or_link_local() {
    for url in ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x", "https://example.com/x"] {
        assert!(check_url(url, Profile::Sandbox).is_ok(), "{url}");
    }
    for (url, why) in [
        ("http://169.254.169.254", UrlError::ForbiddenAddress),
        ("http://169.254.169.254/latest/meta-data/", UrlError::ForbiddenAddress),
        ("http://10.0.0.1", UrlError::ForbiddenAddress),
        ("http://192.168.1.1", UrlError::ForbiddenAddress),
        ("http://[fe80::1]", UrlError::ForbiddenAddress),
        ("http://[fd00::1]", UrlError::ForbiddenAddress),
        ("http://[::ffff:10.0.0.1]", UrlError::ForbiddenAddress),
        ("http://0.0.0.0:9", UrlError::ForbiddenAddress),
        ("http://user:pw@127.0.0.1:9", UrlError::UserInfo),
        ("ftp://127.0.0.1", UrlError::Scheme),
    ] {
        assert_eq!(check_url(url, Profile::Sandbox).map(|_| ()), Err(why), "{url}");
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_in_production_only() {
    let u = url::Url::parse("https://localhost:8443/hook").unwrap();
    assert_eq!(resolve_checked(&u, Profile::Production).await, Err(UrlError::ForbiddenAddress));
    let addrs = resolve_checked(&u, Profile::Sandbox).await.unwrap();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8443), "{addrs:?}");
}

#[tokio::test]
async fn literal_hosts_are_checked_without_resolving() {
    let u = url::Url::parse("http://169.254.169.254/").unwrap();
    assert_eq!(resolve_checked(&u, Profile::Sandbox).await, Err(UrlError::ForbiddenAddress));
    let u = url::Url::parse("http://127.0.0.1:9/").unwrap();
    assert_eq!(resolve_checked(&u, Profile::Sandbox).await.unwrap(), vec!["127.0.0.1:9".parse().unwrap()]);
    assert_eq!(resolve_checked(&u, Profile::Production).await, Err(UrlError::ForbiddenAddress));
}

#[tokio::test]
async fn an_unresolvable_name_is_a_resolve_error() {
    let u = url::Url::parse("https://no-such-host.invalid/").unwrap();
    assert_eq!(resolve_checked(&u, Profile::Production).await, Err(UrlError::Resolve));
}
