//! With the `duckdb` feature: link the prebuilt libduckdb.so that compat-tests/setup.sh installs
//! (from npm's @duckdb/node-bindings-linux-x64) and record its folder as an rpath, so that tests
//! and binaries load it without LD_LIBRARY_PATH. Without the feature this does nothing.
use std::{env, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DUCTSTREAM_DUCKDB_DIR");
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if env::var_os("CARGO_FEATURE_DUCKDB").is_none() {
        return;
    }
    // DUCKDB_LIB_DIR is what libduckdb-sys itself reads; then our own override; then the
    // installer's default.
    let dir = env::var_os("DUCKDB_LIB_DIR")
        .or_else(|| env::var_os("DUCTSTREAM_DUCKDB_DIR"))
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ductstream/duckdb")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache/ductstream/duckdb"));
    let lib = dir.join("libduckdb.so");
    if !lib.exists() {
        println!(
            "cargo:warning=the duckdb feature needs {}: run compat-tests/setup.sh",
            lib.display()
        );
    }
    println!("cargo:rerun-if-changed={}", lib.display());
    // Passed on to everything that links this crate (libduckdb-sys adds `-l duckdb`).
    println!("cargo:rustc-link-search=native={}", dir.display());
    // This crate's own tests; dependents' binaries read DEP_DUCTSTREAM_DUCKDB_RPATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    println!("cargo:rpath={}", dir.display());
}
