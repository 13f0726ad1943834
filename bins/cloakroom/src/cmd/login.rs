//! `cloakroom login`: sign in through the gateway's OIDC sign-in in a browser, and keep
//! the session where the other verbs read their token.
//!
//! The CLI listens on `127.0.0.1:<free port>`, keeps a random verifier and sends only its
//! S256 challenge: it opens (or prints) `…/v1/oidc/login?cli_redirect=http://127.0.0.1:<port>/callback&cli_challenge=…`.
//! After the person signs in, the gateway sends the browser to that loopback address
//! with a one-time hand-off code, and the CLI collects the session with
//! `POST /v1/oidc/session {code, code_verifier}`. The session token never travels in a
//! URL, never in argv, and never reaches the browser; a hand-off code seen by anyone
//! else is useless without the verifier. The token goes to
//! `$XDG_CONFIG_HOME/cloakroom/token` (mode 0600), or to stdout as an `export` line
//! with `--print`.

use std::{io::Write as _, path::PathBuf, time::Duration};

use base64::Engine as _;
use cloakroom_api::{Session, SessionRequest};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use crate::{cli::Login, client::AdminClient, error::CliError};

/// The largest request the loopback listener reads.
const MAX_REQUEST: usize = 16 * 1024;

/// Where `cloakroom login` keeps the session: `$XDG_CONFIG_HOME/cloakroom/token`, else
/// `~/.config/cloakroom/token`.
pub(crate) fn token_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("cloakroom").join("token"))
}

/// The token the admin verbs send: `CLOAKROOM_TOKEN`, else the token file.
pub(crate) fn token() -> Option<String> {
    std::env::var("CLOAKROOM_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| std::fs::read_to_string(token_file()?).ok())
}

fn random_b64() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io { context: context.to_owned(), source }
}

pub(crate) async fn run(admin: &AdminClient, c: Login) -> Result<(), CliError> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io("listening on 127.0.0.1"))?;
    let port = listener.local_addr().map_err(io("listening on 127.0.0.1"))?.port();
    let verifier = random_b64();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = reqwest::Url::parse(&format!("{}/v1/oidc/login", admin.base()))
        .map_err(|e| CliError::Input(format!("--admin: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("cli_redirect", &format!("http://127.0.0.1:{port}/callback"));
        q.append_pair("cli_challenge", &challenge);
        if let Some(issuer) = &c.issuer {
            q.append_pair("issuer", issuer);
        }
    }
    eprintln!("Open this URL in a browser to sign in: {url}");
    if !c.no_browser {
        open_browser(url.as_str());
    }
    let code = tokio::time::timeout(c.timeout, wait_for_code(&listener)).await.map_err(|_| {
        CliError::Input(format!("the sign-in did not finish within {}", humantime::format_duration(c.timeout)))
    })??;
    let session: Session = admin.post("/v1/oidc/session", &SessionRequest::new(code, verifier)).await?.body;
    let token = Some(session.token.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CliError::Protocol("POST /v1/oidc/session: an empty token in the answer".into()))?;
    let who = &session.subject;
    let until = crate::output::time(&session.expires_at);
    if c.print {
        println!("export CLOAKROOM_TOKEN={token}");
        eprintln!("Signed in as {who} until {until}.");
        return Ok(());
    }
    let path =
        token_file().ok_or_else(|| CliError::Input("neither XDG_CONFIG_HOME nor HOME is set: use --print".into()))?;
    store(&path, token)?;
    eprintln!("Signed in as {who} until {until}; the session is in {}.", path.display());
    if std::env::var_os("CLOAKROOM_TOKEN").is_some() {
        eprintln!("Note: CLOAKROOM_TOKEN is set and wins over the stored session; unset it to use the session.");
    }
    Ok(())
}

/// Writes the token readable by this user only (the directory too, when created).
fn store(path: &std::path::Path, token: &str) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating the token directory"))?;
    }
    // A fresh file each time, so an existing file's wider mode is never kept.
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("writing the token file"))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io("writing the token file"))?;
    f.write_all(token.as_bytes()).map_err(io("writing the token file"))?;
    f.sync_all().map_err(io("writing the token file"))?;
    std::fs::rename(&tmp, path).map_err(io("writing the token file"))
}

/// Serves the loopback listener until a `GET /callback?code=…` arrives; other requests
/// (a browser's `/favicon.ico`) get a 404 and are otherwise ignored.
async fn wait_for_code(listener: &TcpListener) -> Result<String, CliError> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(io("accepting the browser's connection"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            continue;
        }
        let line = String::from_utf8_lossy(&buf).lines().next().unwrap_or_default().to_owned();
        let target = match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["GET", target, _] => (*target).to_owned(),
            _ => String::new(),
        };
        let code = reqwest::Url::parse(&format!("http://127.0.0.1{target}"))
            .ok()
            .filter(|u| u.path() == "/callback")
            .and_then(|u| u.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()))
            .filter(|c| !c.is_empty());
        let (status, page) = match &code {
            Some(_) => ("200 OK", "Signed in to Cloakroom. You can close this window and return to the terminal."),
            None => ("404 Not Found", "Not found."),
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\
             Referrer-Policy: no-referrer\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        if let Some(code) = code {
            return Ok(code);
        }
    }
}

/// Best effort: the URL is printed anyway. The URL carries no secret (only the challenge).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
