//! The fuzzers' findings, replayed on every test run (stable toolchain, debug build, so
//! overflow checks are on): every input of the committed corpus (`fuzz/corpus/<target>/`,
//! coverage-guided inputs grown from real clients' and Postgres's bytes) and every crash the
//! fuzzers found (`fuzz/regressions/<target>/`), through the same entry points the fuzz
//! targets drive (`ductstream_broker::fuzzing`). A panic names the input that caused it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ductstream_broker::fuzzing;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else { continue };
        files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for {target}: fuzz/corpus/{target}/ should be committed");
    let mut panicked = Vec::new();
    for file in &files {
        let Ok(data) = std::fs::read(file) else { panic!("cannot read {}", file.display()) };
        if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
            panicked.push(file.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "{target}: {} of {} inputs panicked: {panicked:?}", panicked.len(), files.len());
}

#[test]
fn frames_corpus() {
    replay("frames", fuzzing::frames);
}

#[test]
fn request_corpus() {
    replay("request", fuzzing::request);
}

#[test]
fn record_batch_corpus() {
    replay("record_batch", fuzzing::record_batch);
}

#[test]
fn pgoutput_corpus() {
    replay("pgoutput", fuzzing::pgoutput);
}

#[test]
fn sasl_corpus() {
    replay("sasl", fuzzing::sasl);
}
