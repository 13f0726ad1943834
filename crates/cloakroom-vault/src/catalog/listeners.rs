//! The catalog's listeners: the response maskers rebuilt on every change before the
//! change is visible, and the masking settings they are built with.

use std::sync::{atomic::Ordering, Arc};

use cloakroom_mask::{MaskHandle, MaskingConfig, Matcher};

use super::{Catalog, CatalogSnapshot};

pub(super) type Listener = Arc<dyn Fn(&CatalogSnapshot) + Send + Sync>;

/// What the listeners (the masker) have been built from, behind one lock so that a
/// listener registered while a writer is between its rebuild and its snapshot store
/// still starts from that writer's snapshot, not the older visible one.
#[derive(Default)]
pub(super) struct RebuildState {
    /// Generation of the last rebuild that ran.
    done: u64,
    listeners: Vec<Listener>,
    /// The snapshot of the last rebuild that ran: the visible one, or the one about to be.
    latest: Option<Arc<CatalogSnapshot>>,
}

impl Catalog {
    /// Registers a listener called (on a blocking thread) with the new snapshot on every
    /// change, before the snapshot becomes visible to requests, and once now, on the
    /// calling thread, before this returns. The gateway uses it to rebuild the response
    /// masker from [`CatalogSnapshot::value_patterns`].
    ///
    /// The first call and the registration happen under the lock the rebuilds take, so a
    /// change made concurrently is never missed: either its rebuild already ran (and the
    /// first call sees its snapshot) or it runs later with this listener.
    pub fn on_change(&self, listener: impl Fn(&CatalogSnapshot) + Send + Sync + 'static) {
        let listener: Listener = Arc::new(listener);
        let mut state = self.rebuild_state.lock().unwrap_or_else(|p| p.into_inner());
        let current = state.latest.clone().unwrap_or_else(|| self.snapshot.load_full());
        listener(&current);
        state.listeners.push(listener);
    }

    /// Keeps `handle` holding a response masker for the current secrets: builds one and
    /// stores it in `handle` before returning (so secrets loaded from the store at start
    /// are masked from the first response), and a new one (on a blocking thread) on every
    /// change, before [`Catalog::put`] / [`Catalog::delete`] / [`Catalog::refresh`]
    /// return, with the encodings, replacement and detectors of `masking`.
    ///
    /// A catalog has one set of masking settings, used by every masker attached to it:
    /// the last given here or to [`Catalog::set_masking`].
    pub fn attach_masker(&self, handle: MaskHandle, masking: MaskingConfig) {
        self.masking.store(Arc::new(masking));
        let settings = self.masking.clone();
        self.on_change(move |snap| {
            let masking = settings.load();
            match Matcher::build(snap.mask_entries(&masking), &masking.options()) {
                Ok(m) => {
                    for refused in m.refused() {
                        tracing::warn!(%refused, "secret only partly masked");
                    }
                    handle.store(m);
                }
                Err(e) => tracing::error!(error = %e, "building the response masker failed; keeping the previous one"),
            }
        });
    }

    /// Replaces the masking settings (a configuration reload of `[masking]`): every
    /// attached masker is rebuilt with them before this returns. Ordered with
    /// [`Catalog::put`], [`Catalog::delete`] and [`Catalog::refresh`], so the rebuilt
    /// maskers hold every secret those have stored.
    pub async fn set_masking(&self, masking: MaskingConfig) {
        let _w = self.writer.lock().await;
        self.masking.store(Arc::new(masking));
        // Under the writer lock the visible snapshot is the newest: no change is between
        // its rebuild and its publication.
        self.rebuild(self.snapshot.load_full()).await;
    }

    /// The masking settings attached maskers are built with.
    pub fn masking(&self) -> Arc<MaskingConfig> {
        self.masking.load_full()
    }

    /// Makes `snapshot` current. When it changed, the listeners (the masker) run first,
    /// so that a value the detokenizer can substitute is already masked in responses.
    pub(super) async fn publish(&self, snapshot: CatalogSnapshot, changed: bool) {
        let snapshot = Arc::new(snapshot);
        if changed {
            self.rebuild(snapshot.clone()).await;
        }
        self.snapshot.store(snapshot);
    }

    /// Runs the listeners with `snapshot` on a blocking thread and waits for them.
    /// Rebuilds are serialized; one superseded by a newer one before it starts is skipped.
    pub(super) async fn rebuild(&self, snapshot: Arc<CatalogSnapshot>) {
        let generation = self.rebuild_requested.fetch_add(1, Ordering::SeqCst) + 1;
        let state = self.rebuild_state.clone();
        {
            // No listener yet: only remember the snapshot (no thread needed).
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            if s.listeners.is_empty() {
                if s.done < generation {
                    s.done = generation;
                    s.latest = Some(snapshot);
                }
                return;
            }
        }
        let run = move || {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            if s.done > generation {
                return;
            }
            for l in &s.listeners {
                l(&snapshot);
            }
            s.done = generation;
            s.latest = Some(snapshot);
        };
        if let Err(e) = tokio::task::spawn_blocking(run).await {
            tracing::error!(error = %e, "a catalog listener panicked");
        }
    }
}
