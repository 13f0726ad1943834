//! `Location` rewriting: an upstream redirecting to its own absolute URL is pointed at
//! the gateway's route instead (like nginx's default `proxy_redirect`).

use http::uri::{Authority, Scheme, Uri};

use super::Upstream;

/// The `Location` the caller should see for an upstream's `location`, when it points at
/// the upstream itself (same scheme, host and port, below the base path): the gateway
/// route plus the rest of the path, query and fragment (`http://127.0.0.1:9000/base/x`
/// for upstream `http://127.0.0.1:9000/base` and route `/fn/echo` gives `/fn/echo/x`).
/// `None` leaves the header as it was: relative locations, other hosts, other schemes,
/// paths outside the base path, userinfo, and anything that does not parse.
pub fn gateway_location(upstream: &Upstream, route: &str, location: &str) -> Option<String> {
    let (url, fragment) = match location.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (location, None),
    };
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme()?;
    let authority = uri.authority()?;
    if scheme != upstream.scheme() || authority.as_str().contains('@') || !same_origin(upstream, scheme, authority) {
        return None;
    }
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let rest = pq.strip_prefix(upstream.base_path())?;
    if !(rest.is_empty() || rest.starts_with(['/', '?'])) {
        // `/basement` is not below `/base`.
        return None;
    }
    let mut out = route.trim_end_matches('/').to_owned();
    out.push_str(rest);
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    if out.starts_with("//") {
        // Would read as another host (`//evil.example/x`): leave the upstream's URL.
        return None;
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    Some(out)
}

fn same_origin(upstream: &Upstream, scheme: &Scheme, authority: &Authority) -> bool {
    let default_port = |s: &Scheme| if *s == Scheme::HTTPS { 443 } else { 80 };
    let ours = upstream.authority();
    ours.host().eq_ignore_ascii_case(authority.host())
        && ours.port_u16().unwrap_or(default_port(upstream.scheme()))
            == authority.port_u16().unwrap_or(default_port(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(upstream: &str, route: &str, location: &str) -> Option<String> {
        gateway_location(&Upstream::parse(upstream).unwrap(), route, location)
    }

    #[test]
    fn the_upstreams_own_url_becomes_the_route() {
        let up = "http://127.0.0.1:9000/base";
        assert_eq!(rewrite(up, "/fn/echo", "http://127.0.0.1:9000/base/x").as_deref(), Some("/fn/echo/x"));
        assert_eq!(rewrite(up, "/fn/echo", "http://127.0.0.1:9000/base").as_deref(), Some("/fn/echo"));
        assert_eq!(rewrite(up, "/fn/echo", "http://127.0.0.1:9000/base/").as_deref(), Some("/fn/echo/"));
        assert_eq!(rewrite(up, "/fn/echo", "http://127.0.0.1:9000/base?a=1").as_deref(), Some("/fn/echo?a=1"));
        assert_eq!(
            rewrite(up, "/fn/echo", "http://127.0.0.1:9000/base/x/y?a=1&b=2#top").as_deref(),
            Some("/fn/echo/x/y?a=1&b=2#top")
        );
    }

    #[test]
    fn host_case_and_default_ports_are_the_same_origin() {
        assert_eq!(rewrite("http://Api.Example:80", "/fn/a", "http://api.example/x").as_deref(), Some("/fn/a/x"));
        assert_eq!(rewrite("https://api.example", "/fn/a", "https://API.example:443/x").as_deref(), Some("/fn/a/x"));
        assert_eq!(rewrite("http://h:1", "/fn/a", "http://h:1").as_deref(), Some("/fn/a/"));
    }

    #[test]
    fn other_origins_and_paths_outside_the_base_are_left_alone() {
        let up = "http://127.0.0.1:9000/base";
        for location in [
            "http://127.0.0.1:9001/base/x",
            "https://127.0.0.1:9000/base/x",
            "http://localhost:9000/base/x",
            "http://example.com/base/x",
            "http://127.0.0.1:9000/basement",
            "http://127.0.0.1:9000/other",
            "http://user@127.0.0.1:9000/base/x",
            "/base/x",
            "x",
            "not a url",
        ] {
            assert_eq!(rewrite(up, "/fn/echo", location), None, "{location}");
        }
    }

    #[test]
    fn a_rewrite_never_makes_a_protocol_relative_url() {
        assert_eq!(rewrite("http://h:1", "/", "http://h:1//evil.example/x"), None);
        assert_eq!(rewrite("http://h:1", "/", "http://h:1/x").as_deref(), Some("/x"));
        assert_eq!(rewrite("http://h:1", "/", "http://h:1?q").as_deref(), Some("/?q"));
    }
}
