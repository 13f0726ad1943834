//! Migration from sled: copies a sled audit store into segment files on open.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The fields of a stored sled record copied into the calls file and the writer's head.
#[cfg(feature = "sled")]
#[derive(Deserialize)]
pub(super) struct Migrated {
    pub(super) id: String,
    pub(super) hash: String,
}

/// Migrates a sled store in `dir` to segment files, when there is one (see docs/audit.md):
/// builds `<dir>.migrating`, checks every chain's head, then renames `dir` to
/// `<dir>.sled-backup` and `<dir>.migrating` to `dir`. Reading the sled store needs the
/// cargo feature `sled`: without it, a sled store found there is refused, untouched.
pub(super) async fn migrate_from_sled(dir: &Path, segment_bytes: u64) -> Result<(), SinkError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SinkError::Migration(format!("{} has no directory name", dir.display())))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let migrating = parent.join(format!("{name}.migrating"));
    let backup = parent.join(format!("{name}.sled-backup"));
    if dir.join(CHAINS).is_dir() {
        return Ok(());
    }
    let is_sled = dir.join("conf").is_file() || dir.join("db").is_file();
    if !is_sled {
        // A crash between the two renames: the sled store is in the backup and the
        // migrated one (complete: it was checked before the first rename) is waiting.
        if !dir.exists() && backup.is_dir() && migrating.join(CHAINS).is_dir() {
            fs::rename(&migrating, dir)?;
            fsync_dir(&parent)?;
            tracing::info!(backup = %backup.display(), "finished the migration of the audit store from sled");
        }
        return Ok(());
    }
    if !cfg!(feature = "sled") {
        return Err(sled_missing(dir));
    }
    if backup.exists() {
        return Err(SinkError::Migration(format!(
            "{} holds a sled audit store to migrate, but {} exists already; move it away and restart",
            dir.display(),
            backup.display()
        )));
    }
    if migrating.exists() {
        // Left by a migration that did not finish: start again.
        fs::remove_dir_all(&migrating)?;
    }
    let records = copy_from_sled(dir, &migrating, segment_bytes).await?;
    fs::rename(dir, &backup)?;
    fs::rename(&migrating, dir)?;
    fsync_dir(&parent)?;
    tracing::info!(
        records,
        backup = %backup.display(),
        "migrated the audit store from sled to segment files; the sled store is kept as a backup"
    );
    Ok(())
}

/// The refusal of a sled store in `dir` by a build without the cargo feature `sled`.
fn sled_missing(dir: &Path) -> SinkError {
    let what = format!("{} holds a sled audit store; migrating it", dir.display());
    SinkError::Migration(cloakroom_core::MissingFeature::new("sled", what).to_string())
}

/// Never called: [`migrate_from_sled`] refused the store first.
#[cfg(not(feature = "sled"))]
async fn copy_from_sled(dir: &Path, _: &Path, _: u64) -> Result<u64, SinkError> {
    Err(sled_missing(dir))
}

/// Copies every chain of the sled store in `dir` into a segment store in `migrating`,
/// checking each chain's head; returns how many records were copied.
#[cfg(feature = "sled")]
async fn copy_from_sled(dir: &Path, migrating: &Path, segment_bytes: u64) -> Result<u64, SinkError> {
    use crate::sink::SledSink;

    let records = {
        let sled = blocking({
            let dir = dir.to_owned();
            move || SledSink::open(&dir)
        })
        .await?;
        let store = blocking({
            let migrating = migrating.to_owned();
            move || SegmentStore::open_here(&migrating, segment_bytes)
        })
        .await?;
        let mut records = 0u64;
        for chain_id in sled.chain_ids().await? {
            store.create_chain(&chain_id)?;
            let mut after = None;
            let mut next = None;
            loop {
                let page = sled.scan(&chain_id, after, MIGRATION_PAGE).await?;
                let Some((last_key, _)) = page.last() else { break };
                after = Some(*last_key);
                // Positions as sled gives them: its first key, then one more per line.
                let first = *next.get_or_insert(page[0].0);
                let meta: Vec<Option<Migrated>> = page.iter().map(|(_, v)| serde_json::from_slice(v).ok()).collect();
                let entries = page.iter().zip(&meta).enumerate().map(|(i, ((_, text), m))| Entry {
                    chain_id: &chain_id,
                    seq: first + i as u64,
                    call_id: m.as_ref().map(|m| m.id.as_str()),
                    hash: m.as_ref().map_or("", |m| &m.hash),
                    text: text.as_slice(),
                });
                if let Some(p) = Prepared::new(entries)? {
                    store.write(p).await?;
                }
                next = Some(first + page.len() as u64);
                records += page.len() as u64;
                if page.len() < MIGRATION_PAGE {
                    break;
                }
            }
            let (old, new) = (sled.head(&chain_id).await?, store.head(&chain_id).await?);
            if old != new {
                return Err(SinkError::Migration(format!(
                    "chain {chain_id:?}: the migrated head {new:?} is not sled's {old:?}; the sled store is left as it was"
                )));
            }
        }
        fsync_dir(&migrating.join(CHAINS))?;
        fsync_dir(migrating)?;
        records
    };
    Ok(records)
}
