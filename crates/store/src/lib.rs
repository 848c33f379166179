//! # parley-store
//!
//! Durable history for Parley: [`SqliteStore`], an embedded SQLite database in the data
//! directory that implements the hub's [`parley_hub::Store`]. No setup, no service: the
//! file is created and migrated on first start.
//!
//! Why `rusqlite` and not `sqlx`: every call here runs on the hub's one writer thread or
//! on a blocking task, so an async driver would only add a runtime layer around the same
//! blocking calls; `rusqlite` is small, builds SQLite with FTS5 in, and keeps statements
//! cached per connection. A PostgreSQL store for clusters implements the same trait with
//! `tokio-postgres`.
#![warn(missing_docs)]

mod password;
mod schema;
mod sqlite;

pub use schema::{schema_version, MigrateError};
pub use sqlite::{
    inspect, snapshot, AccountEntry, ExportError, Inspection, OpenError, Retention, SqliteStore, DB_FILE,
};
