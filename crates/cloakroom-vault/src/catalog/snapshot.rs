//! The immutable snapshot readers see: entries, lookups by name and by placeholder.

use std::{collections::HashMap, sync::Arc, time::Instant};

use arc_swap::ArcSwapOption;
use cloakroom_core::{Placeholder, Secret, PLACEHOLDER_LEN};
use cloakroom_mask::{MaskEntry, MaskingConfig};
use serde::Serialize;

use crate::{
    binding::{Binding, BindingSpec},
    scan,
};

/// Where a secret's binding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Declared in `[[secrets]]`: the config's binding wins.
    Config,
    /// Put through the admin API only.
    Api,
}

pub(crate) struct CachedValue {
    pub(super) secret: Secret,
    pub(super) fetched: Instant,
}

/// One secret in the catalog.
pub struct CatalogEntry {
    pub(super) name: String,
    pub(super) placeholder: Placeholder,
    pub(super) binding: Option<Arc<Binding>>,
    pub(super) origin: Origin,
    pub(super) value: ArcSwapOption<CachedValue>,
}

impl std::fmt::Debug for CatalogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogEntry")
            .field("name", &self.name)
            .field("placeholder", &self.placeholder)
            .field("origin", &self.origin)
            .field("has_value", &self.value.load().is_some())
            .finish_non_exhaustive()
    }
}

impl CatalogEntry {
    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its placeholder.
    pub fn placeholder(&self) -> &Placeholder {
        &self.placeholder
    }
    /// Its binding; `None`: it is never substituted (but still masked).
    pub fn binding(&self) -> Option<&Binding> {
        self.binding.as_deref()
    }
    /// Where the binding comes from.
    pub fn origin(&self) -> Origin {
        self.origin
    }
    /// The cached value, however old (for building the masker). `None` when unknown.
    pub fn cached_value(&self) -> Option<Secret> {
        self.value.load().as_ref().map(|v| v.secret.clone())
    }
}

/// What `GET /v1/secrets` shows for one secret: never the value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretInfo {
    /// Name.
    pub name: String,
    /// Placeholder.
    pub placeholder: Placeholder,
    /// Binding, if any.
    pub binding: Option<BindingSpec>,
    /// `config` or `api`.
    pub origin: Origin,
    /// Whether the vault holds a value.
    pub has_value: bool,
}

/// A secret found in a request whose binding needs approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalNeed {
    /// The secret's name.
    pub name: String,
    /// Its placeholder.
    pub placeholder: Placeholder,
    /// The groups that may approve.
    pub approvers: Vec<String>,
}

/// A secret value with the names the masker replaces it with (see [`CatalogSnapshot::value_patterns`]).
#[derive(Debug, Clone)]
pub struct ValuePattern {
    /// The secret's name.
    pub name: String,
    /// Its value.
    pub value: Secret,
    /// Its placeholder.
    pub placeholder: Placeholder,
}

/// An immutable view of the catalog.
#[derive(Debug, Default)]
pub struct CatalogSnapshot {
    pub(super) entries: Vec<Arc<CatalogEntry>>,
    pub(super) by_name: HashMap<String, usize>,
    pub(super) by_placeholder: HashMap<[u8; PLACEHOLDER_LEN], usize>,
    /// Entries with a binding, by the literal first segment of its function patterns;
    /// a binding with a pattern that has none (`*`, `**`) is in `bound_anywhere`.
    bound_by_function: HashMap<String, Vec<usize>>,
    bound_anywhere: Vec<usize>,
}

impl CatalogSnapshot {
    pub(super) fn build(entries: Vec<Arc<CatalogEntry>>) -> Self {
        let mut by_name = HashMap::with_capacity(entries.len());
        let mut by_placeholder = HashMap::with_capacity(entries.len());
        let mut bound_by_function: HashMap<String, Vec<usize>> = HashMap::new();
        let mut bound_anywhere = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            by_name.insert(e.name.clone(), i);
            let key: [u8; PLACEHOLDER_LEN] = e.placeholder.as_bytes().try_into().expect("placeholders are 32 bytes");
            by_placeholder.insert(key, i);
            let Some(binding) = &e.binding else { continue };
            // A binding without `functions` allows none: it is filed nowhere.
            match cloakroom_core::literal_first_segments(binding.spec().functions.iter().map(String::as_str)) {
                Some(segments) => {
                    for s in segments {
                        bound_by_function.entry(s.to_owned()).or_default().push(i);
                    }
                }
                None => bound_anywhere.push(i),
            }
        }
        Self { entries, by_name, by_placeholder, bound_by_function, bound_anywhere }
    }

    /// The entries whose binding may allow `function`: every one that does, and few
    /// others (those whose patterns name the same first segment, or match anywhere).
    /// What the in-flight registry checks per call, instead of every secret.
    pub fn bound_candidates<'a>(&'a self, function: &str) -> impl Iterator<Item = &'a Arc<CatalogEntry>> + 'a {
        let keyed =
            self.bound_by_function.get(cloakroom_core::first_segment(function)).map(Vec::as_slice).unwrap_or(&[]);
        keyed.iter().chain(&self.bound_anywhere).map(|&i| &self.entries[i])
    }

    /// Every entry.
    pub fn entries(&self) -> &[Arc<CatalogEntry>] {
        &self.entries
    }

    /// Number of secrets.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Arc<CatalogEntry>> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// The entry whose placeholder is exactly `placeholder` (32 bytes).
    pub fn by_placeholder(&self, placeholder: &[u8]) -> Option<&Arc<CatalogEntry>> {
        let key: &[u8; PLACEHOLDER_LEN] = placeholder.try_into().ok()?;
        self.by_placeholder.get(key).map(|&i| &self.entries[i])
    }

    /// Every known placeholder in `haystack`, leftmost first, with its byte range.
    /// Strings shaped like placeholders that the catalog does not know are skipped.
    pub fn find<'a>(
        &'a self,
        haystack: &'a [u8],
    ) -> impl Iterator<Item = (std::ops::Range<usize>, &'a Arc<CatalogEntry>)> + 'a {
        scan::candidates(haystack).filter_map(move |r| self.by_placeholder(&haystack[r.clone()]).map(|e| (r, e)))
    }

    /// (value, placeholder) of every secret with a known value: what the response masker
    /// replaces. Build the masker from this on a blocking thread.
    pub fn value_patterns(&self) -> Vec<ValuePattern> {
        self.entries
            .iter()
            .filter_map(|e| {
                e.cached_value().map(|value| ValuePattern {
                    name: e.name.clone(),
                    value,
                    placeholder: e.placeholder.clone(),
                })
            })
            .collect()
    }
}

impl CatalogSnapshot {
    /// The response masker's entries: each known value, replaced by its placeholder or
    /// `[REDACTED:name]` as `[masking] replacement` says.
    pub fn mask_entries(&self, masking: &MaskingConfig) -> Vec<MaskEntry> {
        self.value_patterns()
            .into_iter()
            .map(|p| {
                let replacement = masking.replacement_for(&p.name, p.placeholder.as_str());
                MaskEntry::new(p.name, p.value, replacement)
            })
            .collect()
    }
}
