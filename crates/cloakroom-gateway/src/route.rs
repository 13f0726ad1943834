//! Routing by path prefix: which configured function a request is for.
//!
//! ```
//! use cloakroom_gateway::{config::FunctionConfig, route::Routes};
//! let f = |name: &str, route: &str| FunctionConfig {
//!     name: name.into(), protocol: cloakroom_core::Protocol::Http,
//!     upstream: "http://127.0.0.1:9".into(), route: route.into(), preserve_host: false, ca_file: None,
//! };
//! let routes = Routes::new(&[f("a", "/fn/a"), f("ab", "/fn/a/b")]).unwrap();
//! let (func, rest) = routes.find("/fn/a/b/c?x=1").unwrap();
//! assert_eq!((func.name(), rest), ("ab", "/c?x=1"));
//! let (func, rest) = routes.find("/fn/a").unwrap();
//! assert_eq!((func.name(), rest), ("a", ""));
//! assert!(routes.find("/fn/abc").is_none());
//! ```

use std::sync::Arc;

use cloakroom_core::Protocol;

mod normalize;

pub use normalize::{normalize_path, normalize_query, normalize_target, parse_query, TargetError};

use crate::{
    config::FunctionConfig,
    upstream::{TlsError, Upstream, UpstreamClient, UpstreamError},
};

/// A configured function, ready to route to.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its configuration.
    pub config: FunctionConfig,
    /// Its parsed upstream.
    pub upstream: Upstream,
    /// Its own client, when it trusts a private CA (`ca_file`); else the forwarder's.
    pub client: Option<UpstreamClient>,
}

impl Function {
    /// Builds a function from its configuration (without its `ca_file` client; see
    /// [`Routes::with_clients`]).
    pub fn new(config: FunctionConfig) -> Result<Self, UpstreamError> {
        let upstream = Upstream::parse(&config.upstream)?;
        Ok(Self { config, upstream, client: None })
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The function's protocol.
    pub fn protocol(&self) -> Protocol {
        self.config.protocol
    }
}

/// The request extension saying which function a request was routed to, and the path
/// and query below the function's route (empty, or starting with `/` or `?`).
#[derive(Debug, Clone)]
pub struct Routed {
    /// The function.
    pub function: Arc<Function>,
    /// Path and query below the route.
    pub rest: String,
}

/// The request extension saying the request target could not be normalized (see
/// [`normalize_target`]): the `CallLayer` refuses the call with `bad_request`, inside the
/// audit layer, so the refusal is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedTarget(pub TargetError);

/// The routing table: longest matching route prefix wins, on `/` boundaries.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    // Sorted by route length, longest first.
    functions: Vec<Arc<Function>>,
}

impl Routes {
    /// A table of `functions` (already validated by the config loader).
    pub fn new(functions: &[FunctionConfig]) -> Result<Self, UpstreamError> {
        let mut functions =
            functions.iter().cloned().map(Function::new).map(|f| f.map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
        functions.sort_by_key(|f| std::cmp::Reverse(f.config.route.len()));
        Ok(Self { functions })
    }

    /// Gives every function with a `ca_file` its own client trusting that CA, with
    /// `connect_timeout` for new connections (`server.connect_timeout`).
    pub fn with_clients(mut self, connect_timeout: std::time::Duration) -> Result<Self, TlsError> {
        for f in &mut self.functions {
            if let Some(ca) = &f.config.ca_file {
                let client = UpstreamClient::trusting(connect_timeout, ca)?;
                Arc::make_mut(f).client = Some(client);
            }
        }
        Ok(self)
    }

    /// The function for `path_and_query`, and what remains below its route.
    pub fn find<'p>(&self, path_and_query: &'p str) -> Option<(&Arc<Function>, &'p str)> {
        let path_end = path_and_query.find('?').unwrap_or(path_and_query.len());
        let path = &path_and_query[..path_end];
        self.functions.iter().find_map(|f| {
            let route = f.config.route.as_str();
            let below = path.strip_prefix(route)?;
            (below.is_empty() || below.starts_with('/')).then(|| (f, &path_and_query[route.len()..]))
        })
    }

    /// The function named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Function>> {
        self.functions.iter().find(|f| f.name() == name)
    }

    /// Every function.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.functions.iter()
    }
}
