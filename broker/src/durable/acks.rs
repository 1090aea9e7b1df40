//! Ack, Nak, InProgress and Term: what a worker says about messages it pulled.

use super::settings::check_duration;
use super::state::{Applied, MessageId};
use super::{dead_letter, now_ms, store};
use crate::{Broker, BrokerError, Result};

/// The most ids one request may name.
const MAX_IDS: usize = 100_000;

pub async fn ack(broker: &Broker, stream: &str, group: &str, ids: &[String]) -> Result<Applied> {
    let ids = parse(ids)?;
    let topic = store::topic(broker, stream).await?;
    Ok(store::update(broker, &topic, group, |state| state.ack(&ids)).await?.1)
}

pub async fn nak(broker: &Broker, stream: &str, group: &str, ids: &[String], delay_ms: u64) -> Result<Applied> {
    let ids = parse(ids)?;
    if delay_ms > 0 {
        check_duration("nak delay", delay_ms)?;
    }
    let topic = store::topic(broker, stream).await?;
    let now = now_ms();
    Ok(store::update(broker, &topic, group, |state| state.nak(&ids, delay_ms, now)).await?.1)
}

pub async fn in_progress(broker: &Broker, stream: &str, group: &str, ids: &[String]) -> Result<Applied> {
    let ids = parse(ids)?;
    let topic = store::topic(broker, stream).await?;
    let now = now_ms();
    Ok(store::update(broker, &topic, group, |state| state.in_progress(&ids, now)).await?.1)
}

/// Stops redelivering the messages and moves them to the dead-letter topic with `reason`.
pub async fn term(broker: &Broker, stream: &str, group: &str, ids: &[String], reason: &str) -> Result<Applied> {
    let ids = parse(ids)?;
    let topic = store::topic(broker, stream).await?;
    let now = now_ms();
    let reason = if reason.trim().is_empty() { "no reason given" } else { reason.trim() };
    let (state, doomed) = store::update(broker, &topic, group, |state| state.terminate(&ids, reason, now)).await?;
    let applied = Applied { applied: doomed.len() as u32, already_done: (ids.len() - doomed.len()) as u32 };
    let dead = doomed.into_iter().map(|(id, count)| (id, count, format!("terminated: {reason}"))).collect();
    dead_letter::move_all(broker, &topic, &state, dead).await?;
    Ok(applied)
}

fn parse(ids: &[String]) -> Result<Vec<MessageId>> {
    if ids.is_empty() {
        return Err(BrokerError::InvalidArgument("no message ids given".into()));
    }
    if ids.len() > MAX_IDS {
        return Err(BrokerError::InvalidArgument(format!("at most {MAX_IDS} ids per request, not {}", ids.len())));
    }
    let mut parsed: Vec<MessageId> = ids.iter().map(|id| MessageId::parse(id)).collect::<Result<_>>()?;
    parsed.sort_unstable();
    parsed.dedup();
    Ok(parsed)
}
