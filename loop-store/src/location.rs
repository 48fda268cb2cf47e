//! Where a log is, as a person writes it (`loopd --store`, `LOOPD_STORE`, `contract.md` §6):
//! `postgres://…` (or `postgresql://…`) for a PostgreSQL database, `sqlite:PATH` or a plain path
//! for a SQLite file.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::store::EventStore;

/// A log's location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreAt {
    Sqlite(PathBuf),
    /// A connection URL, password and all: never shown (see [`StoreAt::shown`]).
    Postgres(String),
}

impl StoreAt {
    /// Reads a location; an empty one is refused.
    pub fn parse(text: &str) -> Result<StoreAt, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an empty store location: give a path, sqlite:PATH or postgres://…".into());
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreAt::Postgres(text.to_owned()));
        }
        let path = text.strip_prefix("sqlite:").unwrap_or(text);
        if path.is_empty() {
            return Err("sqlite: needs a path after it".into());
        }
        if path.contains("://") {
            return Err(format!(
                "{text:?} is neither a path nor a postgres:// URL (the stores are SQLite and PostgreSQL)"
            ));
        }
        Ok(StoreAt::Sqlite(PathBuf::from(path)))
    }

    /// The location for messages: a path, or a URL without its password.
    pub fn shown(&self) -> String {
        match self {
            StoreAt::Sqlite(path) => path.display().to_string(),
            StoreAt::Postgres(url) => crate::postgres::redact(url),
        }
    }

    /// Opens (or creates) the log.
    pub fn open(&self) -> Result<Arc<dyn EventStore>, StoreError> {
        Ok(match self {
            StoreAt::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
            StoreAt::Postgres(url) => Arc::new(PgStore::connect(url)?),
        })
    }

    /// Opens the log as [`StoreAt::open`] does, except that a PostgreSQL server that cannot be
    /// reached now is no error: the store connects when it answers, and says meanwhile why it
    /// cannot work ([`PgStore::connect_when_reachable`]). A daemon's way to open its log.
    pub fn open_when_reachable(&self) -> Result<Arc<dyn EventStore>, StoreError> {
        Ok(match self {
            StoreAt::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
            StoreAt::Postgres(url) => Arc::new(PgStore::connect_when_reachable(url)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::StoreAt;
    use proptest::prelude::*;
    use std::path::PathBuf;

    #[test]
    fn the_forms_of_contract_6() {
        assert_eq!(
            StoreAt::parse("postgres://loop:pw@db/loop"),
            Ok(StoreAt::Postgres("postgres://loop:pw@db/loop".into()))
        );
        assert_eq!(
            StoreAt::parse("postgresql://db/loop"),
            Ok(StoreAt::Postgres("postgresql://db/loop".into()))
        );
        assert_eq!(
            StoreAt::parse("sqlite:/var/lib/loopd/loopd.db"),
            Ok(StoreAt::Sqlite(PathBuf::from("/var/lib/loopd/loopd.db")))
        );
        assert_eq!(
            StoreAt::parse("loopd.db"),
            Ok(StoreAt::Sqlite(PathBuf::from("loopd.db")))
        );
        assert!(StoreAt::parse("").is_err());
        assert!(StoreAt::parse("sqlite:").is_err());
        assert!(StoreAt::parse("mysql://db/loop").is_err());
        assert_eq!(
            StoreAt::parse("postgres://loop:pw@db/loop")
                .unwrap()
                .shown(),
            "postgres://loop:***@db/loop"
        );
    }

    proptest! {
        /// Any text: no panic; a URL stays whole, a path keeps every byte after `sqlite:`.
        #[test]
        fn any_text_reads_as_one_location_or_a_reason(text in "\\PC{0,60}") {
            match StoreAt::parse(&text) {
                Ok(StoreAt::Postgres(url)) => prop_assert_eq!(url, text.trim()),
                Ok(StoreAt::Sqlite(path)) => {
                    let trimmed = text.trim();
                    let expected = trimmed.strip_prefix("sqlite:").unwrap_or(trimmed);
                    prop_assert_eq!(path, PathBuf::from(expected));
                }
                Err(reason) => prop_assert!(!reason.is_empty()),
            }
        }
    }
}
