//! Where a signed-in browser may be sent: a local path on the admin listener, or the
//! loopback listener of `cloakroom login`. Anything else is refused before the sign-in
//! starts, so the callback can never become an open redirect.

use cloakroom_core::{Error, ErrorCode};

/// Where the browser goes when the login request names no `return_to`.
pub(super) const DEFAULT_RETURN_TO: &str = "/console";

/// `return_to` as a path on this listener, or an error.
///
/// It must be an absolute path (`/…`) that stays on this host however a browser reads
/// it: not `//host` or `/\host` (which browsers treat as another host), no backslash,
/// no control character. The result is the path and query as the URL parser
/// normalizes them, so what is checked is what is sent.
pub(super) fn local_return_to(return_to: &str) -> Result<String, Error> {
    let refused = || Error::new(ErrorCode::BadRequest, "return_to must be a path on this listener, such as /console");
    if !return_to.starts_with('/')
        || return_to.starts_with("//")
        || return_to.contains('\\')
        || return_to.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(refused());
    }
    let base = url::Url::parse("http://cloakroom.invalid/").expect("a valid base URL");
    let joined = base.join(return_to).map_err(|_| refused())?;
    if joined.origin() != base.origin() {
        return Err(refused());
    }
    let mut out = joined.path().to_owned();
    if let Some(q) = joined.query() {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// `cli_redirect` as a loopback `http` URL (RFC 8252 §7.3), or an error: the literal
/// address `127.0.0.1` or `[::1]` with an explicit port, no user info and no fragment.
/// `localhost` is refused: a name may resolve elsewhere.
pub(super) fn loopback_redirect(cli_redirect: &str) -> Result<url::Url, Error> {
    let refused =
        || Error::new(ErrorCode::BadRequest, "cli_redirect must be http://127.0.0.1:<port>/… or http://[::1]:<port>/…");
    let url = url::Url::parse(cli_redirect).map_err(|_| refused())?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(a)) => a == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    };
    if url.scheme() != "http"
        || !loopback
        || url.port().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(refused());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_return_targets() {
        assert_eq!(local_return_to("/console").unwrap(), "/console");
        assert_eq!(local_return_to("/console/approvals?id=a%20b").unwrap(), "/console/approvals?id=a%20b");
        assert_eq!(local_return_to("/a/../console").unwrap(), "/console");
        for evil in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "evil.example",
            "",
            "javascript:alert(1)",
            "/ok\r\nSet-Cookie: x=1",
        ] {
            assert!(local_return_to(evil).is_err(), "{evil:?} accepted");
        }
    }

    #[test]
    fn only_loopback_http_urls_with_a_port_are_cli_targets() {
        assert!(loopback_redirect("http://127.0.0.1:5000/callback").is_ok());
        assert!(loopback_redirect("http://[::1]:5000/callback").is_ok());
        for evil in [
            "http://localhost:5000/callback",
            "https://127.0.0.1:5000/callback",
            "http://127.0.0.1/callback",
            "http://127.0.0.2:5000/callback",
            "http://evil.example:5000/",
            "http://127.0.0.1.evil.example:5000/",
            "http://user@127.0.0.1:5000/",
            "http://127.0.0.1:5000/#frag",
            "/callback",
            "file:///etc/passwd",
        ] {
            assert!(loopback_redirect(evil).is_err(), "{evil:?} accepted");
        }
    }
}
