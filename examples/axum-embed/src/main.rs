//! Runs the example on 127.0.0.1:3000 with a fresh data directory and fresh keys,
//! stores one secret and prints the API key and placeholder to try it with:
//!
//! ```text
//! cargo run -p cloakroom-example-axum-embed
//! curl -s localhost:3000/weather -H "Authorization: Bearer $KEY" -H "X-Api-Key: $PLACEHOLDER"
//! ```

use cloakroom_example_axum_embed::{BoxError, Embedded, Settings};
use cloakroom_identity::{ApiKeyConfig, IdentityConfig};
use cloakroom_vault::{BindingSpec, Keys};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = std::env::temp_dir().join(format!("cloakroom-axum-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let caller_key = format!("ck_example_{}", std::process::id());
    let settings = Settings {
        identity: IdentityConfig {
            api_keys: vec![ApiKeyConfig {
                subject: "example-agent".into(),
                groups: vec!["agents".into()],
                sha256: sha256_hex(&caller_key),
            }],
            ..IdentityConfig::default()
        },
        policy: toml::from_str(
            r#"
            [[rules]]
            name = "agents may ask for the weather"
            effect = "allow"
            functions = ["weather"]
            groups = ["agents"]
            "#,
        )?,
        audit: Default::default(),
    };
    let app = Embedded::build(&dir, &Keys::generate(), &settings).await?;
    let binding = BindingSpec {
        functions: vec!["weather".into()],
        locations: vec!["header:x-api-key".into()],
        groups: vec!["agents".into()],
        ..BindingSpec::default()
    };
    let placeholder = app.put_secret("weather_api_key", "wk_live_example_provider_key".into(), binding).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "KEY={caller_key}\nPLACEHOLDER={placeholder}\nlistening on http://127.0.0.1:3000 (data in {})",
        dir.display()
    );
    axum::serve(listener, app.router.clone()).await?;
    Ok(())
}

/// Lowercase hex SHA-256, as `[[identity.api_keys]] sha256` expects.
fn sha256_hex(s: &str) -> String {
    use std::fmt::Write;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(s.as_bytes());
    digest.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
