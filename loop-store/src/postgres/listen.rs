//! The listening connection: subscribers hear of other nodes' commits through it.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use loop_core::Seq;

use crate::postgres::Inner;
use crate::postgres::rows::{Conn, PAGE};
use crate::postgres::writer::CHANNEL;

/// How often the listener reads the log even without a notification.
const POLL: Duration = Duration::from_secs(1);
/// The first pause before connecting again; it doubles up to [`POLL`].
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);

/// Reads what committed after the store's cursor whenever a commit is announced (or a second
/// passed) and hands it to the subscribers; ends with the store.
///
/// When its connection breaks it opens another with backoff, listens again and reads from its
/// cursor: whatever committed meanwhile reaches the subscribers then, once (a subscription
/// drops what it already has, by seq).
///
/// `from` is `None` for a store that started before its server answered: the cursor is then
/// the log's last seq when the listener first connects (a subscription reads what came before
/// from the log, and one that sees a gap in what is published reads it back too).
pub(super) async fn listen(store: Weak<Inner>, from: Option<Seq>) {
    // Everything after the cursor is published.
    let mut cursor = from;
    loop {
        let Some(link) = store.upgrade().map(|inner| Arc::clone(&inner.link)) else {
            return;
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(RECONNECT_MIN_DELAY)
            .with_max_delay(POLL)
            .with_jitter()
            .without_max_times();
        let opened = (|| link.open())
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .await;
        let Ok((client, mut connection)) = opened else {
            continue;
        };
        let (heard, mut notified) = tokio::sync::mpsc::unbounded_channel::<()>();
        let driver = tokio::spawn(async move {
            loop {
                let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                match message {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                        if heard.send(()).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        });
        if link.schema(&client).await.is_ok()
            && client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_ok()
        {
            let mut listening = Conn::new(client);
            let start = match cursor {
                Some(cursor) => Ok(cursor),
                None => listening.last_seq(&link.at).await,
            };
            if let Ok(mut start) = start {
                follow(&store, &link.at, &mut listening, &mut start, &mut notified).await;
                cursor = Some(start);
            }
        }
        driver.abort();
    }
}

/// Publishes what commits after `cursor` until the connection breaks or the store is gone.
async fn follow(
    store: &Weak<Inner>,
    at: &Path,
    listening: &mut Conn,
    cursor: &mut Seq,
    notified: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    loop {
        let Some(inner) = store.upgrade() else {
            return;
        };
        if !inner.subscribers.any() {
            // Nobody to hand events to: note how far the log goes instead of reading and
            // decoding every committed group (on the runtime the writer runs on). The last seq
            // is read before looking again, so a subscription made in between finds everything
            // up to it in the log when it catches up, and what follows is read from here.
            let Ok(last) = listening.last_seq(at).await else {
                return;
            };
            if !inner.subscribers.any() {
                *cursor = last.max(*cursor);
                // Other nodes' commits still count as seen: the writer's guesses go by it.
                inner.subscribers.published_up_to(*cursor);
                drop(inner);
                tokio::select! {
                    heard = notified.recv() => if heard.is_none() { return },
                    () = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
        }
        let Ok(records) = listening.read_after(at, *cursor, PAGE).await else {
            return;
        };
        *cursor = records.last().map_or(*cursor, |r| r.seq);
        let full = records.len() as i64 == PAGE;
        if !records.is_empty() {
            inner.subscribers.publish(records.into());
        }
        drop(inner);
        if full {
            continue;
        }
        tokio::select! {
            heard = notified.recv() => if heard.is_none() { return },
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
