//! Partition changes across brokers (appends and DeleteRecords): LISTEN on a dedicated
//! connection, forwarded to a channel.

use std::future::poll_fn;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_postgres::{AsyncMessage, Notification};
use uuid::Uuid;

use super::pool::{query_error, Pool};
use super::queries::Query;
use crate::{PartitionOffsets, Result, StorageError};

/// A partition's bounds after another broker (or this one) changed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionNotice {
    pub topic_id: Uuid,
    pub partition: i32,
    pub offsets: PartitionOffsets,
}

/// How many wake-ups may wait for the receiver before newer ones are dropped.
const CHANNEL_CAPACITY: usize = 4096;

pub(crate) async fn subscribe(pool: &Pool) -> Result<mpsc::Receiver<PartitionNotice>> {
    let (client, mut connection) = pool.connect().await?;
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
fn forward(sender: &mpsc::Sender<PartitionNotice>, notification: &Notification) -> bool {
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

/// `<topic id>:<partition>:<high watermark>:<log start>`.
fn parse(payload: &str) -> Option<PartitionNotice> {
    let mut parts = payload.split(':');
    let topic_id = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let high_watermark = parts.next()?.parse().ok()?;
    let log_start = parts.next()?.parse().ok()?;
    let offsets = PartitionOffsets { log_start, high_watermark };
    parts.next().is_none().then_some(PartitionNotice { topic_id, partition, offsets })
}

#[cfg(test)]
mod tests {
    use super::{parse, PartitionNotice};
    use crate::PartitionOffsets;

    #[test]
    fn parses_payloads() {
        let id = uuid::Uuid::new_v4();
        let offsets = PartitionOffsets { log_start: 7, high_watermark: 120 };
        assert_eq!(parse(&format!("{id}:3:120:7")), Some(PartitionNotice { topic_id: id, partition: 3, offsets }));
        assert_eq!(parse(&format!("{id}:3:120")), None);
        assert_eq!(parse(&format!("{id}:3:1:2:9")), None);
        assert_eq!(parse("x:1:2:0"), None);
    }
}
