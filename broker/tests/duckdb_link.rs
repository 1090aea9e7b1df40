//! The broker's binaries and tests load the prebuilt libduckdb.so without LD_LIBRARY_PATH.
#![cfg(feature = "duckdb")]

#[test]
fn duckdb_links_and_loads() {
    let version = ductstream_sinks::duckdb_probe::library_version();
    assert!(
        matches!(&version, Ok(v) if v.starts_with("v1.")),
        "{version:?}"
    );
}
