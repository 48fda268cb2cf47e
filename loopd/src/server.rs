//! The accept loop: HTTP/1.1 connections with timeouts, a cap on how many are open, the peer's
//! user attached to every request, and a graceful drain at shutdown.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so a client that opens
//! connections and sends nothing (or a few thousand idle ones) would hold the daemon's file
//! descriptors forever. Here:
//!
//! - a connection that has not sent a whole request head within the header timeout (15 s) is
//!   closed —
//!   whether it is new or idle between keep-alive requests (hyper's header-read timer runs
//!   whenever it waits for a head);
//! - at most `max_connections` are open; one more is answered `503` with a JSON reason and
//!   closed, so file descriptors stay for the runs (agents, logs, the database);
//! - hyper's own parse-error answers get a JSON body ([`crate::protocol_errors`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::protocol_errors::JsonErrors;

/// The largest request head taken (bodies have their own limit); past it, 431.
const MAX_HEAD: usize = 32 * 1024;
/// The read buffer of a connection.
const MAX_BUFFER: usize = 64 * 1024;
/// How long open connections may take to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);
/// How long a connection over the cap is kept: to read its request head, answer it, and
/// drain the rest.
const REFUSAL: Duration = Duration::from_secs(2);
/// The pause after an accept that failed (out of file descriptors, most likely).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Who sent a request: the peer's address and, on loopback, the user that owns its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub uid: Option<u32>,
}

/// How connections are bounded.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A connection must send a whole request head within this, new or idle.
    pub header_timeout: Duration,
    /// Connections open at once; one more is answered 503.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown`, then lets open connections finish (up to
/// [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let Limits {
        header_timeout,
        max_connections,
    } = limits;
    let open = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection; trying again shortly");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tokio::spawn(refuse(stream, max_connections));
            continue;
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        // The owner of the peer's socket is looked up once, by the connection's first request,
        // off the accept loop.
        let owner: Arc<OnceCell<Option<u32>>> = Arc::default();
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let (router, owner) = (router.clone(), Arc::clone(&owner));
            async move {
                let uid = *owner
                    .get_or_init(|| async move {
                        tokio::task::spawn_blocking(move || crate::peer::owner_uid(addr, local))
                            .await
                            .ok()
                            .flatten()
                    })
                    .await;
                request.extensions_mut().insert(Peer { addr, uid });
                let Ok(response) = router.oneshot(request).await;
                Ok::<_, Infallible>(response)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_BUFFER)
            .max_header_size(MAX_HEAD)
            .serve_connection(TokioIo::new(JsonErrors::new(stream)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = connection.await {
                tracing::debug!(%error, %addr, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; stopping anyway");
    }
}

/// Answers a connection over the cap with a JSON 503 and closes it.
///
/// The answer waits for the request head: an HTTP/1.1 client does not expect bytes before it
/// has sent its request, and hyper's client (reqwest's) fails such a connection with
/// "unexpected message" instead of reading the 503. Answering at once raced the client: on a
/// busy machine the 503 often arrived between its connect and its request. After the answer,
/// what else the client sends (a body) is drained until it closes, so the socket is not closed
/// with unread input, which would reset the connection. A client that says nothing is closed
/// without an answer after [`REFUSAL`].
async fn refuse(mut stream: TcpStream, max: usize) {
    let body = serde_json::json!({
        "error": format!("loopd already holds {max} open connections; try again shortly"),
        "code": "too_many_connections",
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL, async {
        if !read_head(&mut stream).await {
            return;
        }
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Reads until the end of a request head (or [`MAX_HEAD`] bytes of one); false when the
/// client closed or failed first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                // The blank line may straddle two reads: look from 3 bytes before this one.
                let from = head.len().saturating_sub(3);
                head.extend_from_slice(&buffer[..n]);
                if head[from..].windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_HEAD {
                    return true;
                }
            }
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so the connection cap, not the
/// kernel, decides when to refuse; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// The connection cap for a process allowed `fd_limit` open files: half of them, so the other
/// half is there for agents, their pipes and logs, and the database.
pub fn connection_cap(fd_limit: u64) -> usize {
    usize::try_from(fd_limit / 2)
        .unwrap_or(usize::MAX)
        .clamp(64, 16_384)
}
