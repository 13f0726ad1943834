//! A wiretap between the CLI and a real `cloakroomd`: a TCP relay on 127.0.0.1 that
//! forwards every byte both ways untouched and records the HTTP requests the CLI sent,
//! so a test can assert what went over the wire (path, query, headers, body) while the
//! real gateway does the answering.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// One request as the CLI sent it.
#[derive(Debug, Clone)]
pub struct Tapped {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Tapped {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }
}

/// The relay; stops listening when dropped.
pub struct Wiretap {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Tapped>>>,
    refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Wiretap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Wiretap {
    /// A relay to `target` (`http://host:port`).
    pub async fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (recorded, refusals) = (requests.clone(), refused.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, recorded, refusals) = (target.clone(), recorded.clone(), refusals.clone());
                tokio::spawn(async move {
                    match TcpStream::connect(&target).await {
                        Ok(server) => relay(client, server, recorded).await,
                        // The gateway is down: the CLI sees its connection closed.
                        Err(_) => {
                            refusals.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        Self { addr, requests, refused, task }
    }

    /// The URL to give the CLI as `--admin`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every complete request so far, in order.
    pub fn requests(&self) -> Vec<Tapped> {
        self.requests.lock().unwrap().clone()
    }

    /// How many connections found the gateway not listening.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, recorded: Arc<Mutex<Vec<Tapped>>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let mut pending = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if server_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(req) = take_request(&mut pending) {
            recorded.lock().unwrap().push(req);
        }
    }
    let _ = server_write.shutdown().await;
    let _ = answers.await;
}

/// The first complete HTTP/1.1 request in `pending` (with a `Content-Length` body or
/// none, as the CLI sends them), removed from it.
fn take_request(pending: &mut Vec<u8>) -> Option<Tapped> {
    let head_end = pending.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, uri) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let total = head_end + 4 + len;
    if pending.len() < total {
        return None;
    }
    let body = pending[head_end + 4..total].to_vec();
    pending.drain(..total);
    Some(Tapped { method, uri, headers, body })
}
