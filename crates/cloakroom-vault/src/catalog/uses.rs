//! Which known placeholders a request carries, and where: found once, by the vault that
//! made them, for everything that decides before substitution (policy's
//! `SecretsInCall`, the call scope an approval binds).

use cloakroom_core::PlaceholderUse;

use super::Catalog;

impl Catalog {
    /// The known placeholders in the request's header values, query string and body,
    /// with where each was found (`header:NAME` lowercase, `query:NAME` percent-decoded,
    /// `body`) and its secret's name; each (placeholder, location) once, in request order.
    /// Unknown `cloak_…` strings are the caller's own text and are not listed.
    pub fn placeholder_uses(&self, parts: &http::request::Parts, body: &[u8]) -> Vec<PlaceholderUse> {
        let snap = self.snapshot();
        let mut uses: Vec<PlaceholderUse> = Vec::new();
        let mut add = |haystack: &[u8], location: &dyn Fn() -> String| {
            for (_, entry) in snap.find(haystack) {
                let u = PlaceholderUse::new(entry.placeholder().as_str(), Some(entry.name()), location());
                if !uses.contains(&u) {
                    uses.push(u);
                }
            }
        };
        for (name, value) in &parts.headers {
            add(value.as_bytes(), &|| format!("header:{}", name.as_str()));
        }
        if let Some(q) = parts.uri.query() {
            for pair in q.split('&') {
                let key = pair.split('=').next().unwrap_or("");
                add(pair.as_bytes(), &|| format!("query:{}", crate::percent_decode_lossy(key)));
            }
        }
        add(body, &|| "body".to_owned());
        uses
    }
}
