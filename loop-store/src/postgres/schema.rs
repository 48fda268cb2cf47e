//! Reaching the database and making it loop's: connections, the tables (created under the
//! append lock so two nodes starting at once do not race), the schema version, and how a
//! connection string is shown without its password.

use std::path::Path;

use tokio_postgres::Client;

use crate::error::StoreError;

/// The advisory lock every append holds until it commits (an arbitrary constant: "loop").
pub(crate) const APPEND_LOCK: i64 = 0x6c6f_6f70;
/// Takes [`APPEND_LOCK`] until the transaction ends.
pub(crate) const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
/// The schema version this build writes; a database with a newer one is not touched.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// loop's tables, created when missing.
const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS loop_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq bigint PRIMARY KEY,
    run_id text NOT NULL,
    version bigint NOT NULL,
    type text NOT NULL,
    ts_ms bigint NOT NULL,
    schema integer NOT NULL,
    payload text NOT NULL,
    UNIQUE (run_id, version)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id text PRIMARY KEY,
    status text NOT NULL,
    workspace_root text NOT NULL,
    name text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    version bigint NOT NULL,
    last_seq bigint NOT NULL,
    view text NOT NULL,
    run_branch text
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_ms DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_ms DESC);
CREATE INDEX IF NOT EXISTS runs_by_workspace ON runs (workspace_root, created_ms DESC);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name);
CREATE INDEX IF NOT EXISTS runs_by_branch ON runs (run_branch);
CREATE INDEX IF NOT EXISTS events_by_given_name ON events (((payload::jsonb) ->> 'name'))
    WHERE type IN ('RUN_CREATED', 'RUN_NAMED');
CREATE TABLE IF NOT EXISTS steps_started (step_id text PRIMARY KEY, run_id text NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    node_id text PRIMARY KEY,
    name text NOT NULL,
    address text NOT NULL,
    capacity integer NOT NULL,
    runs integer NOT NULL,
    lease_ms bigint NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    left_at timestamptz
);
-- Added with the nodes' proofs of the cluster's token; a row an older build wrote proves
-- nothing.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS proof text NOT NULL DEFAULT '';
";

/// A connection string without its password: the one in a URL's user info (up to the last `@`
/// of the authority, since a password may hold an `@`), and any `password=` value (a URL's
/// query, or the key=value form).
pub(crate) fn redact(url: &str) -> String {
    let mut shown = url.to_owned();
    if let Some(scheme) = url.find("://") {
        let start = scheme + 3;
        let authority_end = url[start..]
            .find(['/', '?'])
            .map_or(url.len(), |i| start + i);
        if let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i)
            && let Some(colon) = url[start..at].find(':').map(|i| start + i)
        {
            shown = format!("{}***{}", &url[..=colon], &url[at..]);
        }
    }
    let mut out = String::with_capacity(shown.len());
    let mut rest = shown.as_str();
    while let Some(found) = rest.find("password=") {
        let value = found + "password=".len();
        out.push_str(&rest[..value]);
        out.push_str("***");
        let end = rest[value..]
            .find(|c: char| c == '&' || c.is_whitespace())
            .map_or(rest.len(), |i| value + i);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn pg_error(
    at: &Path,
    action: &'static str,
) -> impl Fn(tokio_postgres::Error) -> StoreError {
    let at = at.to_owned();
    move |source| StoreError::Postgres {
        at: at.clone(),
        action,
        source,
    }
}

pub(crate) async fn migrate(client: &Client, at: &Path) -> Result<(), StoreError> {
    // Two nodes starting at once: one creates the tables, the other waits for it.
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK}); {SCHEMA_SQL}"
        ))
        .await
        .map_err(pg_error(at, "create the tables"))?;
    let found: Option<String> = client
        .query_opt(
            "SELECT value FROM loop_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(pg_error(at, "read the schema version"))?
        .map(|row| row.get(0));
    let found = found.and_then(|v| v.parse::<i64>().ok());
    if let Some(found) = found.filter(|found| *found > SCHEMA_VERSION) {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(StoreError::NewerSchema {
            path: at.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    client
        .execute(
            "INSERT INTO loop_meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO NOTHING",
            &[&SCHEMA_VERSION.to_string()],
        )
        .await
        .map_err(pg_error(at, "record the schema version"))?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(pg_error(at, "create the tables"))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("postgres://loop:s3cret@db.example:5432/loop"),
            "postgres://loop:***@db.example:5432/loop"
        );
        assert_eq!(
            redact("postgres://loop@127.0.0.1/loop"),
            "postgres://loop@127.0.0.1/loop"
        );
        assert_eq!(redact("host=db user=loop"), "host=db user=loop");
        // A password holding an `@`, one in the query, one in the key=value form.
        assert_eq!(
            redact("postgres://loop:p@ss@db/loop"),
            "postgres://loop:***@db/loop"
        );
        assert_eq!(
            redact("postgres://db/loop?user=loop&password=s3cret&sslmode=disable"),
            "postgres://db/loop?user=loop&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=db password=s3cret user=loop"),
            "host=db password=*** user=loop"
        );
    }

    proptest::proptest! {
        /// Whatever the URL, a password put in it never shows.
        #[test]
        fn a_password_is_never_shown(
            user in "[a-z]{1,8}",
            // Upper case: nothing else in the URLs is; `/`, `?` and `#` must be percent-encoded.
            password in "PW[A-Z0-9@!]{2,12}",
            host in "[a-z]{1,10}",
        ) {
            for url in [
                format!("postgres://{user}:{password}@{host}:5432/loop"),
                format!("postgres://{host}/loop?user={user}&password={password}"),
                format!("host={host} user={user} password={password}"),
            ] {
                let shown = redact(&url);
                proptest::prop_assert!(!shown.contains(&password), "{shown}");
            }
        }
    }
}
