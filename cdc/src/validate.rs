//! Checks that the source can do logical replication, with messages that say what to set.

use tokio_postgres::Client;

use crate::error::{CdcError, Result};

/// Checks wal_level = logical, max_replication_slots > 0, max_wal_senders > 0 and that the
/// user may replicate.
pub async fn validate_replication(client: &Client, user: &str) -> Result<()> {
    let rows = client
        .query(
            "SELECT name::text, setting::text FROM pg_settings \
             WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders')",
            &[],
        )
        .await
        .map_err(|e| CdcError::from_pg(e, user))?;
    let setting = |name: &str| rows.iter().find(|r| r.get::<_, String>(0) == name).map(|r| r.get::<_, String>(1));
    let wal_level = setting("wal_level").unwrap_or_default();
    if wal_level != "logical" {
        return Err(CdcError::ReplicationNotConfigured { setting: "wal_level".into(), current: wal_level, wanted: "logical".into() });
    }
    for name in ["max_replication_slots", "max_wal_senders"] {
        let value = setting(name).unwrap_or_default();
        if value.parse::<i64>().unwrap_or(0) <= 0 {
            return Err(CdcError::ReplicationNotConfigured { setting: name.into(), current: value, wanted: "10".into() });
        }
    }
    let allowed = client
        .query_opt("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(|e| CdcError::from_pg(e, user))?
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false);
    if !allowed {
        return Err(CdcError::ReplicationNotPermitted { user: user.to_string() });
    }
    Ok(())
}
