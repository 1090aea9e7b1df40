//! When ductstream-sinks is built with its `duckdb` feature, its build script publishes the folder
//! of the prebuilt libduckdb.so (DEP_DUCTSTREAM_DUCKDB_RPATH, from its `links` key). A build
//! script's link args reach only its own package's binaries and tests, so the broker repeats the
//! rpath for the `ductstream` binary and its tests.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = std::env::var("DEP_DUCTSTREAM_DUCKDB_RPATH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
