//! Opening a database file: ownership checks, pragmas and migrations.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::StoreError;

/// `PRAGMA application_id` of a loop event log: "LOOP" in ASCII.
const APPLICATION_ID: i64 = 0x4C4F_4F50;

/// The schema, one migration per `user_version` step. Never edit a released migration: add one.
const MIGRATIONS: &[&str] = &[
    // 1: the log and the first projections.
    "CREATE TABLE events (
        seq      INTEGER PRIMARY KEY,
        run_id   TEXT    NOT NULL,
        version  INTEGER NOT NULL,
        type     TEXT    NOT NULL,
        ts_ms    INTEGER NOT NULL,
        schema   INTEGER NOT NULL,
        payload  TEXT    NOT NULL,
        UNIQUE (run_id, version)
    );
    CREATE TABLE runs (
        run_id         TEXT    PRIMARY KEY,
        status         TEXT    NOT NULL,
        workspace_root TEXT    NOT NULL,
        name           TEXT    NOT NULL,
        created_ms     INTEGER NOT NULL,
        updated_ms     INTEGER NOT NULL,
        version        INTEGER NOT NULL,
        last_seq       INTEGER NOT NULL,
        view           TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX runs_by_created ON runs (created_ms, run_id);
    CREATE INDEX runs_by_status ON runs (status, created_ms);
    CREATE TABLE steps (
        step_id     TEXT    PRIMARY KEY,
        run_id      TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        started_seq INTEGER NOT NULL,
        view        TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX steps_by_run ON steps (run_id, started_seq);",
    // 2: runs found by name and by branch (`GET /runs/lookup`).
    "ALTER TABLE runs ADD COLUMN run_branch TEXT;
    UPDATE runs SET run_branch = json_extract(view, '$.worktree.run_branch');
    CREATE INDEX runs_by_name ON runs (name);
    CREATE INDEX runs_by_branch ON runs (run_branch);",
    // 3: steps are folded from their run's events when read, not stored; a step id stays
    // global through an index over the events that start steps. The `runs` row becomes a
    // snapshot: rewritten when a column it is searched by changes, else every few events, and
    // brought up to date on read from the run's later events.
    "CREATE INDEX events_by_started_step ON events (json_extract(payload, '$.step_id'))
        WHERE type = 'STEP_STARTED';
    DROP TABLE steps;",
    // 4: a run is found by every name it has had (the name it was created with, then the
    // naming call's), so a name printed once keeps meaning that run and is never given again.
    "CREATE INDEX events_by_given_name ON events (json_extract(payload, '$.name'))
        WHERE type IN ('RUN_CREATED', 'RUN_NAMED');",
];

/// How long a connection waits for another one's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema version this build writes and the newest it can read.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn error_at(
    path: &Path,
    action: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_owned();
    move |source| {
        if source.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
            StoreError::NotOurs {
                path,
                reason: "the file is not an SQLite database".to_owned(),
            }
        } else {
            StoreError::Sqlite {
                path,
                action,
                source,
            }
        }
    }
}

/// Creates the file owner-only when it does not exist yet, so the log is never readable by
/// others even for an instant. SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            action: "create the database file",
            source,
        }),
    }
}

/// Makes a log of ours and its WAL files the owner's alone, whatever mode they were made with
/// (by hand, or by an older build under a looser umask). Files of another owner are left as
/// they are.
fn tighten(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut names = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(name.into());
    }
    for name in names {
        if let Ok(meta) = std::fs::metadata(&name)
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// Opens a connection with the pragmas every connection needs.
pub(crate) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(error_at(path, "open"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(error_at(path, "set the busy timeout"))?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
        .map_err(error_at(path, "set pragmas"))?;
    Ok(conn)
}

/// Opens (creating when missing) the log at `path` and brings its schema up to date. Refuses a
/// database that is not a loop log and one written by a newer build.
pub(crate) fn open_and_migrate(path: &Path) -> Result<Connection, StoreError> {
    create_private(path)?;
    let mut conn = connect(path)?;
    // Look before switching to WAL, so a database that is not ours is left exactly as it was.
    // One read transaction: three separate reads could straddle another opener's migration and
    // see its tables without its application id.
    let user_version = {
        let snapshot = conn
            .transaction()
            .map_err(error_at(path, "begin reading the header"))?;
        check_ours(&snapshot, path)?
    };

    tighten(path);
    switch_to_wal(&conn, path)?;
    tighten(path);
    if user_version < SCHEMA_VERSION {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .map_err(error_at(path, "begin migration"))?;
        // Another process may have created or migrated the log since the first look (two
        // first opens of a fresh file): look again now that nobody else can write.
        let user_version = check_ours(&tx, path)?;
        for migration in &MIGRATIONS[user_version as usize..] {
            tx.execute_batch(migration)
                .map_err(error_at(path, "migrate the schema"))?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(error_at(path, "set the application id"))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(error_at(path, "set the schema version"))?;
        tx.commit().map_err(error_at(path, "commit migration"))?;
    }
    Ok(conn)
}

/// Puts the database in WAL mode (a no-op when it already is).
fn switch_to_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    // The switch needs the file to itself and SQLite does not wait for that (no busy handler):
    // another process opening the same fresh file may hold it for a moment. Wait like a lock.
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            result => return result.map_err(error_at(path, "switch to WAL")),
        }
    }
}

/// The schema version of the database behind `conn`, when it is a loop log (or still empty)
/// this build can read.
fn check_ours(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let application_id: i64 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(error_at(path, "read the application id"))?;
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(error_at(path, "read the schema version"))?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(error_at(path, "list tables"))?;

    let fresh = application_id == 0 && user_version == 0 && tables == 0;
    if (application_id != APPLICATION_ID && !fresh) || user_version < 0 {
        return Err(StoreError::NotOurs {
            path: path.to_owned(),
            reason: format!(
                "application id {application_id:#x}, schema version {user_version}, \
                 {tables} schema objects"
            ),
        });
    }
    if user_version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: user_version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(user_version)
}
