//! Dropping a flow's replication slot when the flow is deleted: a slot nobody reads keeps
//! every WAL segment from its position on, until the source's disk fills.

use std::time::{Duration, Instant};

use crate::error::{CdcError, Result};
use crate::source::SourceConfig;

/// Whether a slot was there to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Dropped,
    NotFound,
}

/// Drops `slot` in the source's database. A slot still in use (the flow's replication
/// connection closing, or a broker that has not yet noticed the flow is gone) is tried again
/// until `patience` runs out, then the in-use error is returned.
pub async fn drop_slot(source: &SourceConfig, slot: &str, patience: Duration) -> Result<Dropped> {
    let client = source.connect().await?;
    let deadline = Instant::now() + patience;
    loop {
        let attempt = client
            .query(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE slot_name = $1 AND database = current_database()",
                &[&slot],
            )
            .await;
        match attempt {
            Ok(rows) if rows.is_empty() => return Ok(Dropped::NotFound),
            Ok(_) => return Ok(Dropped::Dropped),
            Err(e) => {
                let error = CdcError::from_pg(e, source.user());
                let in_use = matches!(&error, CdcError::SlotInUse { .. });
                if !in_use || Instant::now() >= deadline {
                    return Err(error);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
