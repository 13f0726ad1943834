//! Opening an embedded sled store: the one way every sled store of Cloakroom (the
//! embedded vault, the embedded approval store, the audit crate's legacy sink) opens its
//! directory. Behind the `sled` feature, so crates without a sled store do not build it.

use std::time::{Duration, Instant};

/// How long a held directory lock is waited for before it is an error.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens the sled database `config` names, retrying a held directory lock for up to
/// [`LOCK_WAIT`].
///
/// sled locks its directory. A handle of this process that was just dropped can hold the
/// lock for a moment longer (sled's background flusher finishes first), as can a
/// gateway that is still shutting down while its replacement starts. Another process
/// that keeps the store open still gets an error after the wait, one whose text names
/// the lock.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = cloakroom_core::sled_open::open(&sled::Config::new().path(dir.path())).unwrap();
/// db.insert("k", "v").unwrap();
/// ```
pub fn open(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if is_lock_conflict(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

/// sled 0.34 reports a held lock as an `Other` I/O error with this text; the tests below
/// fail if that changes, rather than the retry silently stopping.
fn is_lock_conflict(e: &std::io::Error) -> bool {
    e.to_string().starts_with("could not acquire lock")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{open, LOCK_WAIT};

    #[test]
    fn a_store_held_open_is_refused_naming_the_lock_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        let _held = open(&config).unwrap();
        let started = Instant::now();
        let Err(err) = open(&config) else { panic!("a second handle opened a locked store") };
        assert!(started.elapsed() >= LOCK_WAIT, "waited for the lock first");
        assert!(err.to_string().contains("could not acquire lock"), "{err}");
    }

    #[test]
    fn a_store_opens_once_the_holder_lets_go_within_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        let held = open(&config).unwrap();
        held.insert("k", "v").unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            held.flush().unwrap();
            drop(held);
        });
        let reopened = open(&config).expect("opened once the lock was released");
        releaser.join().unwrap();
        assert_eq!(reopened.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_store_just_closed_opens_again_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        for i in 0u32..20 {
            let db = open(&config).unwrap();
            db.insert(i.to_be_bytes(), &[]).unwrap();
            drop(db);
        }
        assert_eq!(open(&config).unwrap().len(), 20);
    }
}
