//! Append wake-ups across brokers: LISTEN on a dedicated connection, forwarded to a channel.

use std::future::poll_fn;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_postgres::{AsyncMessage, Config, NoTls, Notification};
use uuid::Uuid;

use super::pool::{connect_error, query_error};
use super::queries::Query;
use crate::{Result, StorageError};

/// How many wake-ups may wait for the receiver before newer ones are dropped.
const CHANNEL_CAPACITY: usize = 4096;

pub(crate) async fn subscribe(config: &Config) -> Result<mpsc::Receiver<(Uuid, i32, i64)>> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(connect_error)?;
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    {
        // The connection must be polled for LISTEN to complete; nothing else polls it yet.
        let listen = client.batch_execute(Query::ListenAppends.sql());
        tokio::pin!(listen);
        loop {
            tokio::select! {
                done = &mut listen => {
                    done.map_err(|e| query_error(Query::ListenAppends, e))?;
                    break;
                }
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        forward(&sender, &n);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(query_error(Query::ListenAppends, e)),
                    None => return Err(StorageError::Engine("postgres closed the LISTEN connection".into())),
                },
            }
        }
    }
    tokio::spawn(async move {
        let _client = client; // dropping it would close the connection
        loop {
            tokio::select! {
                () = sender.closed() => break,
                message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if !forward(&sender, &n) {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "postgres LISTEN connection lost; append wake-ups stop");
                        break;
                    }
                    None => {
                        tracing::warn!("postgres LISTEN connection closed; append wake-ups stop");
                        break;
                    }
                },
            }
        }
    });
    Ok(receiver)
}

/// Passes one notification on; false once nobody listens any more.
fn forward(sender: &mpsc::Sender<(Uuid, i32, i64)>, notification: &Notification) -> bool {
    let Some(wake) = parse(notification.payload()) else {
        tracing::warn!(payload = notification.payload(), "ignoring a malformed ductstream_appends notification");
        return true;
    };
    match sender.try_send(wake) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            tracing::debug!("append wake-up dropped: the receiver lags");
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

/// `<topic id>:<partition>:<high watermark>`.
fn parse(payload: &str) -> Option<(Uuid, i32, i64)> {
    let mut parts = payload.split(':');
    let topic_id = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let high_watermark = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((topic_id, partition, high_watermark))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_payloads() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(parse(&format!("{id}:3:120")), Some((id, 3, 120)));
        assert_eq!(parse(&format!("{id}:3")), None);
        assert_eq!(parse(&format!("{id}:3:1:2")), None);
        assert_eq!(parse("x:1:2"), None);
    }
}
