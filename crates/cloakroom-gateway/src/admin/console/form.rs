//! A console form (`application/x-www-form-urlencoded`), decoded once.

/// The fields of a submitted form, in order.
#[derive(Default)]
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, `None` when empty.
    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A comma- or newline-separated list field, trimmed, empty items dropped.
    pub(super) fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or("")
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}
