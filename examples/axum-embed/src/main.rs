//! An axum service with Cloakroom in front of its handlers (see README.md).
use axum::routing::{get, post};
use axum::{http::HeaderMap, Json, Router};
use cloakroom_gateway::{call::CallName, Config, Gateway};
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "cloakroom.toml".into());
    let config = Config::load(&path)?;
    let (listen, admin) = (config.server.listen, config.server.admin_listen);
    let gateway = Gateway::start(config, Some(path.into())).await?;
    // The admin API (secrets, approvals, audit, console) for the CLI and approvers.
    let admin_api = Router::new().fallback_service(gateway.admin_service(None));
    tokio::spawn(std::future::IntoFuture::into_future(axum::serve(TcpListener::bind(admin).await?, admin_api)));
    // `/weather` calls the function `weather` (`/a/b`: `a`, detail `b`): rules and bindings name it.
    let cloakroom = gateway.layer().naming(|req, _body| {
        let mut segments = req.uri.path().split('/').filter(|s| !s.is_empty());
        Some(CallName::new(segments.next()?).detail(segments.next().map(str::to_owned)))
    });
    let app = Router::new().route("/weather", get(weather)).route("/refunds", post(refund)).layer(cloakroom);
    axum::serve(TcpListener::bind(listen).await?, app).await?;
    Ok(())
}

/// Asks a (pretend) provider with the caller's key and, carelessly, echoes the key.
async fn weather(headers: HeaderMap) -> Json<Value> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let forecast = if key.starts_with("wk_live_") { "sunny" } else { "the provider refused the key" };
    Json(json!({ "forecast": forecast, "debug": { "api_key_used": key } }))
}

/// Refunds an amount: a call the policy holds for a person's approval.
async fn refund(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({ "refunded": body["amount"] }))
}
