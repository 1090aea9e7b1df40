//! Enum-like values (endpoint types, wire formats) as people write them: in any case, and with
//! the proto enum's prefix (`WIRE_FORMAT_JSON`) as gRPC's JSON shows them. Stored and compared
//! in the lower-case short form (`json`, `postgres`).

/// `value` in lower case, without `proto_prefix` (given in lower case, e.g. "wire_format_").
pub fn normalize(value: &str, proto_prefix: &str) -> String {
    let lower = value.trim().to_ascii_lowercase();
    match lower.strip_prefix(proto_prefix) {
        Some(rest) if !proto_prefix.is_empty() && !rest.is_empty() => rest.to_owned(),
        _ => lower,
    }
}

/// The proto prefix of `WireFormat` values.
pub const WIRE_FORMAT_PREFIX: &str = "wire_format_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_case_and_the_proto_prefix() {
        assert_eq!(normalize("POSTGRES", ""), "postgres");
        assert_eq!(normalize(" Topics ", ""), "topics");
        assert_eq!(normalize("WIRE_FORMAT_JSON", WIRE_FORMAT_PREFIX), "json");
        assert_eq!(normalize("Parquet", WIRE_FORMAT_PREFIX), "parquet");
        assert_eq!(normalize("wire_format_", WIRE_FORMAT_PREFIX), "wire_format_");
    }
}
