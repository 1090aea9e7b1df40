//! Which JSON shape each Postgres type gets, by type OID: a fixed table for built-in types and
//! a pg_type lookup for the rest (enums, domains, extension types, their arrays).

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::error::{CdcError, Result};

/// How a column's text value becomes JSON (see [`crate::value::to_json`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    Bool,
    /// int2, int4, int8, oid: a JSON number (int8 exactly, as serde_json keeps i64 digits).
    Int,
    /// numeric: a JSON string, so no precision is lost.
    Numeric,
    /// float4, float8: a JSON number; NaN and infinities as strings.
    Float,
    /// bytea: base64 (standard alphabet, padded).
    Bytea,
    /// timestamp without time zone: `2024-01-02T03:04:05.123456`.
    Timestamp,
    /// timestamptz: `2024-01-02T03:04:05.123456Z` (sessions run with TimeZone=UTC).
    TimestampTz,
    /// json, jsonb: embedded JSON.
    Json,
    /// An array of `element`, as a (nested) JSON array.
    Array { element: u32, delimiter: u8 },
    /// Everything else keeps its text form as a string: text, varchar, char, uuid, date, time,
    /// interval (ISO 8601), inet, cidr, macaddr, money, bit, varbit, xml, geometric types,
    /// enums, ranges, extension types.
    Text,
}

/// Built-in types and their arrays (OIDs are fixed in pg_type.dat).
const BUILTIN: &[(u32, TypeKind)] = &[
    (16, TypeKind::Bool),
    (17, TypeKind::Bytea),
    (20, TypeKind::Int),
    (21, TypeKind::Int),
    (23, TypeKind::Int),
    (26, TypeKind::Int),
    (114, TypeKind::Json),
    (3802, TypeKind::Json),
    (700, TypeKind::Float),
    (701, TypeKind::Float),
    (1700, TypeKind::Numeric),
    (1114, TypeKind::Timestamp),
    (1184, TypeKind::TimestampTz),
];

/// Array type OID -> element type OID, for built-in types.
const BUILTIN_ARRAYS: &[(u32, u32)] = &[
    (1000, 16),
    (1001, 17),
    (1002, 18),
    (1003, 19),
    (1005, 21),
    (1007, 23),
    (1009, 25),
    (1014, 1042),
    (1015, 1043),
    (1016, 20),
    (1017, 600),
    (1020, 603),
    (1021, 700),
    (1022, 701),
    (1028, 26),
    (791, 790),
    (1041, 869),
    (651, 650),
    (1040, 829),
    (775, 774),
    (1182, 1082),
    (1183, 1083),
    (1115, 1114),
    (1185, 1184),
    (1187, 1186),
    (1231, 1700),
    (1270, 1266),
    (1561, 1560),
    (1563, 1562),
    (2951, 2950),
    (199, 114),
    (3807, 3802),
    (143, 142),
];

/// The box type is the one built-in whose array delimiter is ';'.
const BOX_OID: u32 = 603;

/// Type OID -> kind, filled lazily for non-built-in types.
#[derive(Debug, Clone)]
pub struct TypeRegistry {
    kinds: HashMap<u32, TypeKind>,
    resolve: bool,
}

impl TypeRegistry {
    /// With `resolve` off, unknown OIDs are kept as text instead of being looked up.
    pub fn new(resolve: bool) -> Self {
        let mut kinds: HashMap<u32, TypeKind> = BUILTIN.iter().copied().collect();
        for (array, element) in BUILTIN_ARRAYS {
            let delimiter = if *element == BOX_OID { b';' } else { b',' };
            kinds.insert(*array, TypeKind::Array { element: *element, delimiter });
        }
        TypeRegistry { kinds, resolve }
    }

    /// The kind of `oid`; unknown OIDs are text.
    pub fn kind(&self, oid: u32) -> TypeKind {
        self.kinds.get(&oid).copied().unwrap_or(TypeKind::Text)
    }

    /// Makes sure `oid` (and, for arrays, its element type) is known, asking pg_type once.
    /// Built-in types (OIDs below 10000) that are not in the table are plain text and need no lookup.
    pub async fn ensure(&mut self, client: &Client, oid: u32) -> Result<()> {
        let mut todo = vec![oid];
        while let Some(oid) = todo.pop() {
            if self.kinds.contains_key(&oid) || !self.resolve || oid < 10_000 {
                continue;
            }
            let row = client
                .query_opt(
                    "SELECT t.typtype::text, t.typcategory::text, t.typbasetype::int8, t.typelem::int8, \
                            coalesce((SELECT e.typdelim::text FROM pg_type e WHERE e.oid = t.typelem), ',') \
                     FROM pg_type t WHERE t.oid = $1::int8::oid",
                    &[&i64::from(oid)],
                )
                .await
                .map_err(|e| CdcError::from_pg(e, ""))?;
            let Some(row) = row else {
                self.kinds.insert(oid, TypeKind::Text);
                continue;
            };
            let typtype: String = row.get(0);
            let category: String = row.get(1);
            let base = row.get::<_, i64>(2) as u32;
            let element = row.get::<_, i64>(3) as u32;
            let delimiter = row.get::<_, String>(4).bytes().next().unwrap_or(b',');
            match (typtype.as_str(), category.as_str()) {
                // A domain takes its base type's shape; resolve the base first.
                ("d", _) => match self.kinds.get(&base) {
                    Some(kind) => {
                        self.kinds.insert(oid, *kind);
                    }
                    None if base >= 10_000 && self.resolve => {
                        todo.push(oid);
                        todo.push(base);
                    }
                    None => {
                        self.kinds.insert(oid, self.kind(base));
                    }
                },
                ("b", "A") if element != 0 => {
                    self.kinds.insert(oid, TypeKind::Array { element, delimiter });
                    todo.push(element);
                }
                _ => {
                    self.kinds.insert(oid, TypeKind::Text);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_known() {
        let r = TypeRegistry::new(false);
        assert_eq!(r.kind(20), TypeKind::Int);
        assert_eq!(r.kind(1007), TypeKind::Array { element: 23, delimiter: b',' });
        assert_eq!(r.kind(1020), TypeKind::Array { element: 603, delimiter: b';' });
        assert_eq!(r.kind(2950), TypeKind::Text);
        assert_eq!(r.kind(123_456), TypeKind::Text);
    }
}
