//! # parley-store
//!
//! Durable history for Parley, behind the hub's store traits ([`parley_hub::Store`]):
//!
//! - [`SqliteStore`], the default: an embedded SQLite database in the data directory.
//!   No setup, no service: the file is created and migrated on first start.
//! - [`PostgresStore`]: a PostgreSQL database (`parley serve --database postgres://…`),
//!   for a server whose data must live on a database server, and for nodes that share
//!   one. Its schema is created and migrated on first connection.
//!
//! Both keep the same things with the same meaning, and `tests/conformance.rs` runs
//! every check against both.
//!
//! Why `rusqlite` and not `sqlx`: every call here runs on the hub's one writer thread or
//! on a blocking task, so an async driver would only add a runtime layer around the same
//! blocking calls; `rusqlite` is small, builds SQLite with FTS5 in, and keeps statements
//! cached per connection. PostgreSQL has no blocking driver that does not bring a
//! runtime of its own, so the PostgreSQL store uses `tokio-postgres` on a small runtime
//! of its own (see its module).
#![warn(missing_docs)]

mod meta;
mod password;
mod postgres;
mod schema;
mod sqlite;
#[cfg(feature = "test-postgres")]
pub mod testing;

pub use postgres::{
    redacted, schema_version as postgres_schema_version, ImportError, Imported, PostgresError, PostgresStore,
    CALL_TIMEOUT,
};
pub use schema::{schema_version, MigrateError};
pub use sqlite::{
    inspect, snapshot, AccountEntry, ExportError, Inspection, OpenError, Retention, SqliteStore, DB_FILE,
};
