//! The listening connection: subscribers hear of other nodes' commits through it.

use std::time::Duration;

use loop_core::Seq;
use tokio_postgres::NoTls;

use crate::postgres::Inner;
use crate::postgres::rows::{Conn, PAGE};
use crate::postgres::writer::CHANNEL;

/// How often the listener reads the log even without a notification.
const POLL: Duration = Duration::from_secs(1);

/// Reads what committed after the store's cursor whenever a commit is announced (or a second
/// passed) and hands it to the subscribers; ends with the store.
pub(super) async fn listen(url: String, store: std::sync::Weak<Inner>, from: Seq) {
    // Everything after `from` is published: a subscription made after the store connected
    // reads what came before from the log.
    let mut cursor = from.0;
    loop {
        let Some(at) = store.upgrade().map(|inner| inner.at.clone()) else {
            return;
        };
        let Ok((client, mut connection)) = tokio_postgres::connect(&url, NoTls).await else {
            tokio::time::sleep(POLL).await;
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
        if client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .is_err()
        {
            driver.abort();
            continue;
        }
        let mut listening = Conn::new(client);
        loop {
            let Some(inner) = store.upgrade() else {
                driver.abort();
                return;
            };
            match listening.read_after(&at, Seq(cursor), PAGE).await {
                Ok(records) => {
                    cursor = records.last().map_or(cursor, |r| r.seq.0);
                    let full = records.len() as i64 == PAGE;
                    if !records.is_empty() {
                        inner.subscribers.publish(records.into());
                    }
                    if full {
                        continue;
                    }
                }
                Err(_) => break,
            }
            drop(inner);
            tokio::select! {
                heard = notified.recv() => if heard.is_none() { break },
                () = tokio::time::sleep(POLL) => {}
            }
        }
        driver.abort();
    }
}
