//! The way to the database: connections opened when first needed and again after any failure,
//! and whether the server answers.
//!
//! A connection that breaks (the server restarted, a network fault, a backend killed) is found
//! closed by its next user, which opens another in its place. When opening one fails the store
//! counts the server as unreachable: calls then fail at once with [`StoreError::Unreachable`]
//! instead of each waiting on a connect, and a probe retries in the background with backoff
//! until a connection opens again. So a store recovers by itself within about a second of its
//! server coming back, and in between anyone can ask it why it cannot work
//! ([`Link::reachability`]).
//!
//! A store may also start before its server answers (a daemon started while PostgreSQL is
//! down: `PgStore::connect_when_reachable`). Then nothing has checked the schema yet, so the
//! first connection that opens creates the tables or refuses a newer schema before anyone
//! uses it ([`Link::schema`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::{MappedMutexGuard, MutexGuard, Notify};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, Config, Connection, NoTls, Socket};

use crate::error::StoreError;
use crate::postgres::rows::Conn;
use crate::postgres::schema::{migrate, pg_error};
use crate::store::Reachability;

/// How long a connect may take before it counts as failed, unless the URL says otherwise: a
/// server that does not answer at all (a host gone from the network) fails in seconds, not
/// after the system's minutes of SYN retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged before the connection counts as broken, unless
/// the URL says otherwise: a server gone without a reset is noticed by the next call.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);
/// The probe's pauses between connects: from this, doubling up to [`PROBE_MAX_DELAY`].
const PROBE_MIN_DELAY: Duration = Duration::from_millis(100);
const PROBE_MAX_DELAY: Duration = Duration::from_secs(1);

/// A place for one connection, empty until first used and after it broke.
pub(crate) type Slot = tokio::sync::Mutex<Option<Conn>>;

pub(crate) struct Link {
    /// How to connect (it may hold a password: never shown).
    config: Config,
    /// Where the database is, without a password, for messages.
    pub(crate) at: PathBuf,
    reachability: Mutex<Reachability>,
    /// Wakes the probe when the server has just been found unreachable.
    lost: Notify,
    /// Set once the tables are known to be there at this build's schema.
    schema: tokio::sync::OnceCell<()>,
}

impl Link {
    /// The link to the database at `url` (see `PgStore::connect`); connects nowhere yet.
    pub(crate) fn new(url: &str, at: PathBuf) -> Result<Link, StoreError> {
        let mut config: Config = url.parse().map_err(pg_error(&at, "read the URL"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        Ok(Link {
            config,
            at,
            reachability: Mutex::new(Reachability::Reachable),
            lost: Notify::new(),
            schema: tokio::sync::OnceCell::new(),
        })
    }

    /// Makes sure, once per store, that loop's tables are there at this build's schema
    /// (creating them, or refusing a newer schema untouched), on `client`. Every connection
    /// runs this before its first use, so a store that started before its server answered
    /// migrates on the first connection that opens.
    pub(crate) async fn schema(&self, client: &Client) -> Result<(), StoreError> {
        self.schema
            .get_or_try_init(|| migrate(client, &self.at))
            .await
            .map(|_| ())
    }

    pub(crate) fn reachability(&self) -> Reachability {
        self.state().clone()
    }

    /// A new connection and the task that drives it, for the caller to poll (the listener
    /// reads notifications from it). A failure marks the server unreachable.
    pub(crate) async fn open(
        &self,
    ) -> Result<(Client, Connection<Socket, NoTlsStream>), StoreError> {
        match self.config.connect(NoTls).await {
            Ok(opened) => {
                self.found();
                Ok(opened)
            }
            Err(source) => {
                self.lose(&source.to_string());
                Err(StoreError::Postgres {
                    at: self.at.clone(),
                    action: "connect",
                    source,
                })
            }
        }
    }

    /// A new connection, driven on the current runtime until it closes, with the schema
    /// checked ([`Link::schema`]).
    pub(crate) async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self.open().await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.schema(&client).await?;
        Ok(client)
    }

    /// The connection in `slot`, for the caller alone until dropped: the one there when it is
    /// still open, else a new one. While the server is known to be unreachable, fails at once
    /// without trying it (the probe does).
    pub(crate) async fn conn<'a>(
        &self,
        slot: &'a Slot,
    ) -> Result<MappedMutexGuard<'a, Conn>, StoreError> {
        let mut held = slot.lock().await;
        if held.as_ref().is_some_and(|conn| conn.client.is_closed()) {
            *held = None;
        }
        if held.is_none() {
            if let Reachability::Unreachable { reason, .. } = self.reachability() {
                return Err(StoreError::Unreachable {
                    at: self.at.clone(),
                    reason,
                });
            }
            *held = Some(Conn::new(self.connect().await?));
        }
        Ok(MutexGuard::map(held, |conn| {
            conn.as_mut().expect("a connection was just put there")
        }))
    }

    /// Connects until a connection opens, pausing between tries with backoff, each time the
    /// server is found unreachable; ends with the store's runtime.
    pub(crate) async fn probe(self: Arc<Self>) {
        loop {
            self.lost.notified().await;
            let backoff = ExponentialBuilder::default()
                .with_min_delay(PROBE_MIN_DELAY)
                .with_max_delay(PROBE_MAX_DELAY)
                .with_jitter()
                .without_max_times();
            // `open` marks the server reachable again when it succeeds.
            let _ = (|| self.open())
                .retry(backoff)
                .sleep(tokio::time::sleep)
                .await;
        }
    }

    fn found(&self) {
        *self.state() = Reachability::Reachable;
    }

    fn lose(&self, reason: &str) {
        let mut state = self.state();
        match &mut *state {
            Reachability::Reachable => {
                *state = Reachability::Unreachable {
                    since_ms: now_ms(),
                    reason: reason.to_owned(),
                };
                drop(state);
                self.lost.notify_one();
            }
            // Still down: the reason is the latest failure's.
            Reachability::Unreachable { reason: last, .. } => reason.clone_into(last),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Reachability> {
        // A panic while holding this lock cannot leave the state inconsistent.
        self.reachability.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}
