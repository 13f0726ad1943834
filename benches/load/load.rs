//! Helper program of the end-to-end load benchmark (`benches/load/run.sh`).
//!
//! - `load upstream ADDR`: the minimal upstream function. Every request gets the same
//!   1 KiB JSON answer, except a path ending in `/stream`, which gets a 64 MiB body
//!   streamed in 64 KiB chunks (`/stream?mib=N` for another size).
//! - `load seed DATA_DIR N`: stores N random secrets (32 bytes each, so they all go into
//!   the response masker) plus the benchmark's own `bench_key` (bound to the `bench`
//!   function in the `X-Api-Key` header) into the embedded vault of a stopped
//!   `cloakroomd`, with the keys from `CLOAKROOM_PLACEHOLDER_KEY` / `CLOAKROOM_VAULT_KEY`,
//!   and prints `bench_key`'s placeholder. Seeding through the library instead of the
//!   admin API avoids rebuilding the masker once per secret (1,000 rebuilds).
//!
//! - `load proxy LISTEN UPSTREAM`: a bare hyper reverse proxy (server + pooled legacy
//!   client, no layers) — the floor of what any hyper-based gateway pays per call, to
//!   tell the cost of Cloakroom's layers from the cost of proxying.
//!
//! Not a test and not a criterion bench: run.sh drives it.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use cloakroom_vault::{BindingSpec, Catalog, EmbeddedVault, Keys};
use http::{header, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The fixed 1 KiB JSON answer.
/// A JSON answer of exactly `len` bytes (at least 64): an object with an array of small
/// items, padded with a string.
fn answer(len: usize) -> Bytes {
    assert!(len >= 64, "answers are at least 64 bytes");
    let mut s = String::from(r#"{"status":"ok","function":"bench","items":["#);
    let mut i = 0;
    while s.len() < len - 40 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(r#"{{"id":{i},"name":"item-{i:04}"}}"#));
        i += 1;
    }
    s.push_str(r#"],"pad":""#);
    while s.len() < len - 2 {
        s.push('x');
    }
    s.push_str("\"}");
    s.truncate(len);
    Bytes::from(s)
}

/// The answers the upstream serves: 1 KiB by default, `?bytes=65536` or `?bytes=1048576`
/// for the benchmark's body-size rows.
#[derive(Clone)]
struct Answers {
    small: Bytes,
    medium: Bytes,
    large: Bytes,
}

impl Answers {
    fn new() -> Self {
        Self { small: answer(1024), medium: answer(64 << 10), large: answer(1 << 20) }
    }

    fn for_query(&self, query: Option<&str>) -> Bytes {
        match query.and_then(|q| q.strip_prefix("bytes=")) {
            Some("65536") => self.medium.clone(),
            Some("1048576") => self.large.clone(),
            _ => self.small.clone(),
        }
    }
}

struct Stream {
    chunk: Bytes,
    remaining: u64,
}

impl Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= n;
        let data = self.chunk.slice(..usize::try_from(n).unwrap_or(usize::MAX));
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

type UpstreamBody = Either<Full<Bytes>, Stream>;

async fn handle(req: Request<Incoming>, answers: Answers, chunk: Bytes) -> Result<Response<UpstreamBody>, Infallible> {
    if req.uri().path().ends_with("/stream") {
        let mib =
            req.uri().query().and_then(|q| q.strip_prefix("mib=")).and_then(|n| n.parse::<u64>().ok()).unwrap_or(64);
        let res = Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(Either::Right(Stream { chunk, remaining: mib << 20 }))
            .expect("static response");
        return Ok(res);
    }
    let res = Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Either::Left(Full::new(answers.for_query(req.uri().query()))))
        .expect("static response");
    Ok(res)
}

async fn upstream(addr: SocketAddr) -> anyhow_like::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let answers = Answers::new();
    assert_eq!((answers.small.len(), answers.medium.len(), answers.large.len()), (1024, 64 << 10, 1 << 20));
    // Printable, secret-free filler for the streamed body.
    let chunk = Bytes::from(b"0123456789abcdef".repeat(4096));
    eprintln!("upstream listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (answers, chunk) = (answers.clone(), chunk.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, answers.clone(), chunk.clone()));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn seed(dir: PathBuf, n: usize) -> anyhow_like::Result<()> {
    use cloakroom_vault::Vault;
    use rand_like::hex_random;
    let keys = Keys::load(None, true)?;
    let store = EmbeddedVault::open(&dir.join("vault"), keys.vault_key().ok_or("CLOAKROOM_VAULT_KEY is not set")?)?;
    // Straight into the store: the catalog republishes its snapshot on every put, which
    // is right for the admin API and quadratic for 100,000 secrets.
    let other = BindingSpec {
        functions: vec!["other".into()],
        locations: vec!["header:x-other".into()],
        ..BindingSpec::default()
    };
    let random = hex_random(16 * n.max(1));
    for i in 0..n {
        let value = random[32 * i..32 * (i + 1)].to_owned();
        store.put(&format!("masked_{i:06}"), &cloakroom_core::Secret::from(value), Some(&other), None).await?;
    }
    let spec = BindingSpec {
        functions: vec!["bench".into(), "bench/**".into()],
        locations: vec!["header:x-api-key".into()],
        groups: vec!["agents".into()],
        ..BindingSpec::default()
    };
    let catalog = Catalog::new(Arc::new(store), keys.placeholder_key().clone(), &[], None).await?;
    let p = catalog.put("bench_key", hex_random(16).into(), Some(spec)).await?;
    println!("{p}");
    Ok(())
}

async fn proxy(listen: SocketAddr, upstream: String) -> anyhow_like::Result<()> {
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build_http();
    let upstream: Arc<str> = upstream.trim_end_matches('/').into();
    eprintln!("bare proxy listening on {listen} -> {upstream}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |mut req: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                    let uri: http::Uri = format!("{upstream}{pq}").parse().expect("upstream uri");
                    *req.uri_mut() = uri;
                    req.headers_mut().remove(header::HOST);
                    match client.request(req).await {
                        Ok(res) => Ok::<_, Infallible>(res.map(|b| b.boxed())),
                        Err(e) => {
                            let body = Full::new(Bytes::from(e.to_string())).map_err(|never| match never {}).boxed();
                            let mut res = Response::new(body);
                            *res.status_mut() = http::StatusCode::BAD_GATEWAY;
                            Ok(res)
                        }
                    }
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// The few error-handling helpers this program needs, without another dependency.
mod anyhow_like {
    /// Any error.
    pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

/// Random hex strings from the OS (the secrets only need to be distinct and unguessable).
mod rand_like {
    use std::io::Read;

    /// `n` random bytes as 2n hex characters.
    pub(crate) fn hex_random(n: usize) -> String {
        let mut buf = vec![0u8; n];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("/dev/urandom");
        buf.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["upstream", addr] => match addr.parse() {
            Ok(addr) => rt.block_on(upstream(addr)),
            Err(e) => Err(format!("bad address {addr}: {e}").into()),
        },
        ["seed", dir, n] => match n.parse() {
            Ok(n) => rt.block_on(seed(PathBuf::from(dir), n)),
            Err(e) => Err(format!("bad count {n}: {e}").into()),
        },
        ["proxy", listen, upstream] => match listen.parse() {
            Ok(listen) => rt.block_on(proxy(listen, (*upstream).to_owned())),
            Err(e) => Err(format!("bad address {listen}: {e}").into()),
        },
        _ => Err("usage: load upstream ADDR | load seed DATA_DIR N | load proxy LISTEN UPSTREAM_URL".into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
