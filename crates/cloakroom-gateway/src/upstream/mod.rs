//! Where a function lives: its parsed upstream base URL, and the client that reaches it.

mod client;

pub use client::{TlsError, UpstreamClient};

use http::uri::{Authority, Scheme, Uri};

/// A function's upstream: `http(s)://host:port` plus an optional base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    base_path: String,
}

/// Why an upstream URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Not a URL at all.
    #[error("expected an upstream URL like \"http://127.0.0.1:9000\", got {0:?}")]
    NotAUrl(String),
    /// A scheme other than `http` or `https`.
    #[error("expected an http:// or https:// upstream, got scheme {0:?}")]
    Scheme(String),
    /// No host.
    #[error("expected an upstream URL with a host, got {0:?}")]
    NoHost(String),
    /// A query or fragment.
    #[error("expected an upstream URL without a query or fragment, got {0:?}")]
    Query(String),
}

impl Upstream {
    /// Parses `http(s)://host[:port][/base]`.
    pub fn parse(url: &str) -> Result<Self, UpstreamError> {
        if url.contains('#') {
            return Err(UpstreamError::Query(url.to_owned()));
        }
        let uri: Uri = url.parse().map_err(|_| UpstreamError::NotAUrl(url.to_owned()))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| UpstreamError::NotAUrl(url.to_owned()))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(UpstreamError::Scheme(scheme.to_string()));
        }
        let authority = uri.authority().cloned().ok_or_else(|| UpstreamError::NoHost(url.to_owned()))?;
        if authority.host().is_empty() {
            return Err(UpstreamError::NoHost(url.to_owned()));
        }
        if uri.query().is_some() {
            return Err(UpstreamError::Query(url.to_owned()));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Self { scheme, authority, base_path })
    }

    /// The authority (`host:port`), what `Host` is set to unless the caller's is preserved.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The URI for `rest` (path and query below the route, starting with `/` or empty).
    pub fn uri_for(&self, rest: &str) -> Result<Uri, http::Error> {
        // The route itself maps to the base path exactly (`/mcp`, not `/mcp/`: servers
        // such as the MCP SDKs redirect one to the other).
        let mut pq = String::with_capacity(self.base_path.len() + rest.len() + 1);
        pq.push_str(&self.base_path);
        if (pq.is_empty() && !rest.starts_with('/')) || (!rest.is_empty() && !rest.starts_with(['/', '?'])) {
            pq.push('/');
        }
        pq.push_str(rest);
        Uri::builder().scheme(self.scheme.clone()).authority(self.authority.clone()).path_and_query(pq).build()
    }

    /// The scheme (`http` or `https`).
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The base path (no trailing `/`; empty for none).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_path_and_rest_join_with_one_slash() {
        let u = Upstream::parse("http://127.0.0.1:9000/mcp/").unwrap();
        assert_eq!(u.uri_for("").unwrap().to_string(), "http://127.0.0.1:9000/mcp");
        assert_eq!(u.uri_for("/").unwrap().to_string(), "http://127.0.0.1:9000/mcp/");
        assert_eq!(u.uri_for("/x?a=1").unwrap().to_string(), "http://127.0.0.1:9000/mcp/x?a=1");
        assert_eq!(u.uri_for("?a=1").unwrap().to_string(), "http://127.0.0.1:9000/mcp?a=1");
        let u = Upstream::parse("http://h:1").unwrap();
        assert_eq!(u.uri_for("/v1/charge").unwrap().to_string(), "http://h:1/v1/charge");
        assert_eq!(u.uri_for("").unwrap().to_string(), "http://h:1/");
        assert_eq!(u.uri_for("?q").unwrap().to_string(), "http://h:1/?q");
    }

    #[test]
    fn only_plain_http_urls_are_upstreams() {
        assert!(matches!(Upstream::parse("ftp://h"), Err(UpstreamError::Scheme(_))));
        assert_eq!(Upstream::parse("https://h/v1").unwrap().uri_for("/x").unwrap().to_string(), "https://h/v1/x");
        assert!(Upstream::parse("h:1").is_err());
        assert!(matches!(Upstream::parse("http://h/?q=1"), Err(UpstreamError::Query(_))));
        assert!(matches!(Upstream::parse("not a url"), Err(UpstreamError::NotAUrl(_))));
    }
}
