//! The broker's untrusted inputs, as the fuzz targets in `fuzz/` drive them and as
//! `tests/fuzz_corpus.rs` replays their corpus on every test run. Each function takes any
//! bytes at all: it must neither panic nor reserve memory the bytes do not justify, and it
//! asserts what must hold of whatever the broker accepts.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use clap::Parser;
use ductstream_storage::{Batch, MemoryStorage};
use kafka_protocol::messages::RequestKind;

use crate::config::{Args, BrokerConfig};
use crate::request_memory::RequestMemory;
use crate::security::credentials::{self, ScramCredential, ScramMechanism};
use crate::security::{sasl, ListenerSpec, SecurityProtocol};
use crate::{api, frame, record_checks, records, request, Broker};

/// Frames read from a byte stream, as a connection reads them, each then decoded as a request.
pub fn frames(data: &[u8]) {
    const MAX: usize = 64 * 1024;
    let memory = RequestMemory::new(MAX);
    let mut input = data;
    let mut consumed = 0;
    while let Ok(Some(frame::Frame { bytes: frame, .. })) = futures::executor::block_on(frame::read_frame(&mut input, MAX, &memory)) {
        // A frame is exactly the bytes its length announced, nothing more.
        assert!(frame.len() <= MAX);
        consumed += 4 + frame.len();
        assert_eq!(&data[consumed - frame.len()..consumed], &frame[..]);
        request(&frame);
    }
    assert_eq!(memory.used(), 0, "every frame's memory went back");
}

/// One request frame (after its length): header, then body when the broker answers that API at
/// that version; a produce request's record batches go on to the produce checks.
pub fn request(frame: &[u8]) {
    let mut frame = Bytes::copy_from_slice(frame);
    let Ok(request::Header { api, version, .. }) = request::header(&mut frame) else { return };
    if !api::is_supported(api, version) {
        return;
    }
    let Ok(body) = request::body(api, version, &mut frame) else { return };
    if let RequestKind::Produce(produce) = body {
        for topic in &produce.topic_data {
            for partition in &topic.partition_data {
                if let Some(records) = &partition.records {
                    record_batches(records.clone());
                }
            }
        }
    }
}

/// A produce request's records: as sent, then with the first batch's length and CRC made
/// right, so that the fuzzer's mutations reach the records rather than stop at the checksum.
pub fn record_batch(data: &[u8]) {
    record_batches(Bytes::copy_from_slice(data));
    if data.len() >= CRC_COVERS_FROM {
        let mut fixed = data.to_vec();
        let length = i32::try_from(fixed.len() - 12).unwrap_or(i32::MAX);
        fixed[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&fixed[CRC_COVERS_FROM..]);
        fixed[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        record_batches(Bytes::from(fixed));
    }
}

/// Where a v2 batch header keeps its length and CRC, and where the CRC starts counting.
const LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const CRC_COVERS_FROM: usize = 21;

fn record_batches(mut data: Bytes) {
    while let Some(Ok(batch)) = Batch::split_first(&mut data) {
        produced_batch(&batch);
    }
}

/// What the broker does with a batch it accepted: the topic rules that read every record,
/// every way of walking its records, and the stamps the log puts on it.
fn produced_batch(batch: &Batch) {
    // A compacted CreateTime topic with tight timestamp bounds decodes every record.
    let configs = BTreeMap::from([
        ("cleanup.policy".to_owned(), "compact".to_owned()),
        ("message.timestamp.before.max.ms".to_owned(), "1000".to_owned()),
        ("message.timestamp.after.max.ms".to_owned(), "1000".to_owned()),
    ]);
    let _ = record_checks::check(batch, "fuzz", 0, &configs, 1_700_000_000_000);
    if let Ok(decoded) = records::decode(batch) {
        assert_eq!(decoded.len(), batch.record_count().max(0) as usize);
        let positions = records::positions(batch).unwrap_or_default();
        assert_eq!(positions.len(), decoded.len(), "positions and records disagree");
        let _ = records::max_timestamp(batch);
        let _ = records::first_at_or_after(batch, 0);
        let _ = records::raw_records(batch);
    }
    // Stamped as the log stamps it, the batch is still one the log may hold.
    let stamped = batch.clone().with_base_offset(1 << 40).with_log_append_time(1_700_000_000_000);
    assert!(Batch::parse_stored(stamped.into_bytes()).is_ok(), "a stamped batch fails its own checks");
}

/// One pgoutput message, as CDC reads it from a replication stream.
pub fn pgoutput(data: &[u8]) {
    let _ = ductstream_cdc::pgoutput::decode(Bytes::copy_from_slice(data));
}

/// A SASL exchange before authentication, the part of the protocol anyone who reaches a port
/// can speak: the first byte picks the mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
/// OAUTHBEARER), the rest is the client's tokens, separated by 0xFF (a byte UTF-8 never
/// has), each answered in turn until the exchange ends. A user `alice` exists, so SCRAM gets
/// past the lookup of its credentials.
pub fn sasl(data: &[u8]) {
    let Some((&choice, tokens)) = data.split_first() else { return };
    let mechanism = sasl::MECHANISMS[usize::from(choice) % sasl::MECHANISMS.len()];
    let (runtime, broker) = sasl_broker();
    runtime.block_on(async {
        let Some(mut exchange) = sasl::start(mechanism) else { return };
        for token in tokens.split(|b| *b == 0xFF) {
            match exchange.step(broker, token).await {
                Ok(sasl::Step::Challenge(_)) => {}
                Ok(sasl::Step::Done { .. }) | Err(_) => return,
            }
        }
    });
}

/// The Ed25519 key OAUTHBEARER tokens are checked against (its private half signed the
/// token in the corpus, so one input gets through the signature to the claims).
const OAUTH_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA+hl7D7L/LCe/TD5b2409cHKMvJNsuh6lewZdKn/WD/s=
-----END PUBLIC KEY-----
";

/// One broker on memory storage for every SASL input, with the user `alice` (password
/// `alice-secret`, one PBKDF2 iteration so that PLAIN inputs stay cheap) and OAUTHBEARER
/// tokens checked against [`OAUTH_PUBLIC_KEY`].
fn sasl_broker() -> &'static (tokio::runtime::Runtime, Arc<Broker>) {
    static BROKER: OnceLock<(tokio::runtime::Runtime, Arc<Broker>)> = OnceLock::new();
    BROKER.get_or_init(|| {
        let setup = |e: &dyn std::fmt::Display| -> ! { panic!("the fuzz broker cannot start: {e}") };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| setup(&e));
        let key_file = std::env::temp_dir().join(format!("ductstream-fuzz-oauth-{}.pem", std::process::id()));
        std::fs::write(&key_file, OAUTH_PUBLIC_KEY).unwrap_or_else(|e| setup(&e));
        let broker = runtime.block_on(async {
            let key_flag = format!("--sasl-oauthbearer-public-key-file={}", key_file.display());
            let args = Args::parse_from(["ductstream", "--storage", "memory", key_flag.as_str()]);
            let bind = std::net::SocketAddr::from(([127, 0, 0, 1], 9092));
            let spec = ListenerSpec { name: "SASL_PLAINTEXT".into(), protocol: SecurityProtocol::SaslPlaintext, bind };
            let config = BrokerConfig::new(&args, &[(spec, bind)]).unwrap_or_else(|e| setup(&e));
            let broker = Broker::start(config, Arc::new(MemoryStorage::new()), args.group_config()).await.unwrap_or_else(|e| setup(&e));
            for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
                let salt = b"fuzz-salt";
                let salted = mechanism.salted_password(b"alice-secret", salt, 1);
                let credential = ScramCredential::from_salted_password(mechanism, salt, 1, &salted);
                credentials::set(&broker, "alice", mechanism, Some(credential)).await.unwrap_or_else(|e| setup(&e));
            }
            broker
        });
        (runtime, broker)
    })
}
