//! Throwaway PostgreSQL databases.

/// A fresh database on the test PostgreSQL server, dropped when this is dropped.
///
/// The server is `$CLOAKROOM_TEST_POSTGRES` (a libpq-style URL or key=value string for
/// an administrative connection), by default `host=127.0.0.1 port=5432 user=postgres
/// dbname=postgres`. `scripts/test.sh` makes sure one is running.
#[derive(Debug)]
pub struct PgDatabase {
    admin: String,
    /// The database's name.
    pub name: String,
    /// A key=value connection string for the new database.
    pub url: String,
}

fn admin_conninfo() -> String {
    std::env::var("CLOAKROOM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".to_owned())
}

// The sync `postgres` client runs its own runtime; keep it off any tokio worker thread.
fn on_plain_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("postgres helper thread panicked")
}

impl PgDatabase {
    /// Creates `cloakroom_test_<random>`; panics with instructions if PostgreSQL is down.
    pub fn create() -> Self {
        let admin = admin_conninfo();
        let name = format!("cloakroom_test_{}", crate::random_name(12));
        let (a, n) = (admin.clone(), name.clone());
        on_plain_thread(move || {
            let mut client = postgres::Client::connect(&a, postgres::NoTls).unwrap_or_else(|e| {
                panic!("PostgreSQL is not reachable at `{a}` ({e}); run ./scripts/test.sh, which starts one")
            });
            client.batch_execute(&format!("CREATE DATABASE {n}")).expect("CREATE DATABASE");
        });
        let base = admin.split_whitespace().filter(|kv| !kv.starts_with("dbname=")).collect::<Vec<_>>().join(" ");
        let url = format!("{base} dbname={name}");
        Self { admin, name, url }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (a, n) = (self.admin.clone(), self.name.clone());
        on_plain_thread(move || {
            if let Ok(mut client) = postgres::Client::connect(&a, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"));
            }
        });
    }
}
