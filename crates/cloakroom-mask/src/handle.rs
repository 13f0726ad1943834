//! The current matcher, swapped at run time without blocking readers.
//!
//! ```
//! use cloakroom_core::Secret;
//! use cloakroom_mask::{MaskEntry, MaskHandle, MaskOptions, Matcher};
//!
//! let handle = MaskHandle::new(Matcher::empty());
//! let reader = handle.clone();
//! assert_eq!(reader.load().replace(b"token=abcdefgh12345678").output, b"token=abcdefgh12345678");
//! // The vault builds a new matcher off the request path and publishes it.
//! let entries = [MaskEntry::new("t", Secret::from("abcdefgh12345678"), "cloak_t")];
//! handle.store(Matcher::build(entries, &MaskOptions::raw_only()).unwrap());
//! assert_eq!(reader.load().replace(b"token=abcdefgh12345678").output, b"token=cloak_t");
//! ```

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::Matcher;

/// A shared, swappable [`Matcher`]. Clones share the same slot: a `store` through one is
/// seen by every `load` through the others. Loads never block and never wait for a
/// store; a stream keeps the matcher it started with until it ends.
#[derive(Clone)]
pub struct MaskHandle(Arc<ArcSwap<Matcher>>);

impl MaskHandle {
    /// A handle holding `matcher`.
    pub fn new(matcher: Matcher) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(matcher)))
    }

    /// A handle holding an empty matcher (masks nothing until a store).
    pub fn empty() -> Self {
        Self::new(Matcher::empty())
    }

    /// The current matcher.
    pub fn load(&self) -> Arc<Matcher> {
        self.0.load_full()
    }

    /// Publishes a new matcher; readers see it from their next `load`.
    pub fn store(&self, matcher: Matcher) {
        self.0.store(Arc::new(matcher));
    }

    /// Publishes an already shared matcher.
    pub fn store_arc(&self, matcher: Arc<Matcher>) {
        self.0.store(matcher);
    }
}

impl Default for MaskHandle {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for MaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MaskHandle").field(&*self.0.load()).finish()
    }
}
