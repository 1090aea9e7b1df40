//! Creating and reconciling the publication the flow reads.

use tokio_postgres::Client;

use crate::error::{CdcError, Result};
use crate::options::{FlowSourceOptions, SyncPublicationMode};
use crate::replication::quote_ident;

/// A table name split into schema (default `public`) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((schema, name)) => TableName { schema: schema.trim().into(), name: name.trim().into() },
            None => TableName { schema: "public".into(), name: text.trim().into() },
        }
    }

    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Makes the publication exist (and match `publication_tables` when `sync_publication`).
/// Every listed table must exist, or the flow fails with [`CdcError::MissingTable`].
pub async fn prepare_publication(client: &Client, options: &FlowSourceOptions) -> Result<()> {
    let user = "";
    let tables: Vec<TableName> = options.publication_tables.iter().map(|t| TableName::parse(t)).collect();
    for table in &tables {
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&table.schema, &table.name],
            )
            .await
            .map_err(|e| CdcError::from_pg(e, user))?;
        if exists.is_none() {
            return Err(CdcError::MissingTable { table: table.to_string() });
        }
    }
    let publication = quote_ident(&options.publication);
    let existing = client
        .query_opt("SELECT puballtables FROM pg_publication WHERE pubname = $1", &[&options.publication])
        .await
        .map_err(|e| CdcError::from_pg(e, user))?;
    let list = tables.iter().map(TableName::quoted).collect::<Vec<_>>().join(", ");
    match existing {
        None if !options.ensure_publication => {
            Err(CdcError::MissingPublication { publication: options.publication.clone() })
        }
        None => {
            let target = if !tables.is_empty() {
                format!("FOR TABLE {list}")
            } else if !options.publication_schemas.is_empty() {
                let schemas = options.publication_schemas.iter().map(|s| quote_ident(s)).collect::<Vec<_>>().join(", ");
                format!("FOR TABLES IN SCHEMA {schemas}")
            } else {
                "FOR ALL TABLES".to_string()
            };
            client
                .batch_execute(&format!("CREATE PUBLICATION {publication} {target}"))
                .await
                .map_err(|e| CdcError::from_pg(e, user))
        }
        Some(row) if options.sync_publication && !tables.is_empty() && !row.get::<_, bool>(0) => {
            match options.sync_publication_mode {
                SyncPublicationMode::Sync => client
                    .batch_execute(&format!("ALTER PUBLICATION {publication} SET TABLE {list}"))
                    .await
                    .map_err(|e| CdcError::from_pg(e, user)),
                SyncPublicationMode::Add => {
                    let current = published_tables(client, &options.publication).await?;
                    let missing: Vec<String> =
                        tables.iter().filter(|t| !current.contains(t)).map(TableName::quoted).collect();
                    if missing.is_empty() {
                        return Ok(());
                    }
                    client
                        .batch_execute(&format!("ALTER PUBLICATION {publication} ADD TABLE {}", missing.join(", ")))
                        .await
                        .map_err(|e| CdcError::from_pg(e, user))
                }
            }
        }
        Some(_) => Ok(()),
    }
}

/// The tables a publication currently publishes.
pub async fn published_tables(client: &Client, publication: &str) -> Result<Vec<TableName>> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
            &[&publication],
        )
        .await
        .map_err(|e| CdcError::from_pg(e, ""))?;
    Ok(rows.iter().map(|r| TableName { schema: r.get(0), name: r.get(1) }).collect())
}
