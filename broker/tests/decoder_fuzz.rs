#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! Mutation fuzzing of the decoders a client's or a database's bytes reach first: Kafka
//! request headers and bodies (every API and version ApiVersions advertises), record batches
//! (with their CRC made right again, so the mutation reaches the fields behind it), and
//! pgoutput messages. Valid inputs are mutated (bytes flipped, lengths set to edge values,
//! cut short, grown) from a fixed seed, a bounded number of times, in the ordinary test run: a
//! decoder may refuse an input, never panic. A panic prints the input that caused it, to be
//! kept as a test of its own.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{BufMut, Bytes, BytesMut};
use ductstream_broker::api::SUPPORTED;
use ductstream_broker::batch_builder::{build, NewRecord};
use ductstream_storage::Batch;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const ITERATIONS: usize = 20_000;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four mutations of `seed`, from `from` on (bytes before it are kept).
fn mutate(rng: &mut Rng, seed: &[u8], from: usize) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = from + rng.below(out.len().saturating_sub(from));
        match rng.below(6) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)],
            2 if at + 4 <= out.len() => {
                let edge = [-1i32, 0, 1, i32::MAX, i32::MIN, out.len() as i32, 0x7fff][rng.below(7)];
                out[at..at + 4].copy_from_slice(&edge.to_be_bytes());
            }
            3 => out.truncate(at),
            4 => {
                let extra: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, extra);
            }
            _ if at + 2 <= out.len() => {
                let edge = [-1i16, 0, i16::MAX, 0x7f][rng.below(4)];
                out[at..at + 2].copy_from_slice(&edge.to_be_bytes());
            }
            _ => {}
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `decode` on the input, turning a panic into a failure that shows the input.
fn must_not_panic(what: &str, input: &[u8], decode: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(decode)).is_err() {
        panic!("{what} panicked on input {}", hex(input));
    }
}

fn encoded<R: Encodable>(request: &R, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    request.encode(&mut buf, version).expect("encode the seed");
    buf.to_vec()
}

fn sample_batch() -> Bytes {
    let records: Vec<NewRecord> = (0..5)
        .map(|i| NewRecord {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: (i != 3).then(|| Bytes::from(format!("value-{i}"))),
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
            timestamp: 1_700_000_000_000 + i,
        })
        .collect();
    build(&records).expect("a batch").into_bytes()
}

#[test]
fn request_decoding_refuses_or_decodes_never_panics() {
    let topic = TopicName(StrBytes::from_static_str("t"));
    let produce = ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(topic.clone()).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(sample_batch())),
        ]),
    ]);
    let fetch = FetchRequest::default().with_max_wait_ms(100).with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(topic.clone())
        .with_partitions(vec![fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)])]);
    let metadata = MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(topic))]));
    let sasl = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"n,,n=alice,r=abcdef"));
    let acls = CreateAclsRequest::default().with_creations(vec![create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("orders"))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_static_str("User:alice"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(3)
        .with_permission_type(3)]);
    let seeds: Vec<(ApiKey, i16, Vec<u8>)> = vec![
        (ApiKey::Produce, 9, encoded(&produce, 9)),
        (ApiKey::Produce, 3, encoded(&produce, 3)),
        (ApiKey::Fetch, 12, encoded(&fetch, 12)),
        (ApiKey::Metadata, 12, encoded(&metadata, 12)),
        (ApiKey::Metadata, 1, encoded(&metadata, 1)),
        (ApiKey::SaslAuthenticate, 2, encoded(&sasl, 2)),
        (ApiKey::CreateAcls, 3, encoded(&acls, 3)),
    ];
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..ITERATIONS {
        let (seed_api, seed_version, seed) = &seeds[rng.below(seeds.len())];
        // Mostly the seed's own API, sometimes any other the broker serves.
        let (api, version) = if rng.below(4) == 0 {
            let (api, min, max) = SUPPORTED[rng.below(SUPPORTED.len())];
            (api, min + rng.below((max - min + 1) as usize) as i16)
        } else {
            (*seed_api, *seed_version)
        };
        let input = mutate(&mut rng, seed, 0);
        must_not_panic(&format!("{api:?} v{version} body"), &input, || {
            let _ = RequestKind::decode(api, &mut Bytes::from(input.clone()), version);
        });
        // The header in front of it, as the connection reads it.
        let header = RequestHeader::default().with_request_api_key(api as i16).with_request_api_version(version).with_correlation_id(7);
        let mut framed = BytesMut::new();
        header.encode(&mut framed, api.request_header_version(version)).expect("header");
        framed.put_slice(seed);
        let input = mutate(&mut rng, &framed, 0);
        must_not_panic(&format!("{api:?} v{version} header"), &input, || {
            let mut bytes = Bytes::from(input.clone());
            if RequestHeader::decode(&mut bytes, api.request_header_version(version)).is_ok() {
                let _ = RequestKind::decode(api, &mut bytes, version);
            }
        });
    }
}

#[test]
fn record_batches_with_any_fields_are_refused_or_read_never_panic() {
    let seed = sample_batch().to_vec();
    let mut rng = Rng(0x5eed_0002);
    let mut parsed = 0;
    for _ in 0..ITERATIONS {
        // Mutate behind the CRC field, then make the CRC right: the parser must hold up on
        // everything a client can say with a valid checksum.
        let mut input = mutate(&mut rng, &seed, 21);
        if input.len() >= 21 {
            let crc = crc32c::crc32c(&input[21..]);
            input[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        must_not_panic("record batch", &input, || {
            let mut bytes = Bytes::from(input.clone());
            while let Some(batch) = Batch::split_first(&mut bytes) {
                let Ok(batch) = batch else { break };
                parsed += 1;
                let _ = (batch.records(), batch.compression(), batch.last_offset(), batch.last_sequence(), batch.record_count());
            }
        });
    }
    assert!(parsed > 0, "no mutated batch parsed: the mutations never got past the checks");
}

#[test]
fn pgoutput_messages_are_refused_or_decoded_never_panic() {
    let mut relation = BytesMut::new();
    relation.put_u8(b'R');
    relation.put_u32(16384);
    relation.put_slice(b"public\0users\0");
    relation.put_u8(b'd');
    relation.put_i16(2);
    for (name, oid) in [("id", 23u32), ("name", 25)] {
        relation.put_u8(1);
        relation.put_slice(name.as_bytes());
        relation.put_u8(0);
        relation.put_u32(oid);
        relation.put_i32(-1);
    }
    let mut insert = BytesMut::new();
    insert.put_u8(b'I');
    insert.put_u32(16384);
    insert.put_u8(b'N');
    insert.put_i16(2);
    insert.put_u8(b't');
    insert.put_i32(1);
    insert.put_slice(b"1");
    insert.put_u8(b'n');
    let mut begin = BytesMut::new();
    begin.put_u8(b'B');
    begin.put_u64(0x1_0000);
    begin.put_i64(0);
    begin.put_u32(700);
    let mut message = BytesMut::new();
    message.put_u8(b'M');
    message.put_u8(0);
    message.put_u64(0x1_0000);
    message.put_slice(b"ductstream.heartbeat\0");
    message.put_u32(2);
    message.put_slice(b"{}");
    let seeds = [relation.to_vec(), insert.to_vec(), begin.to_vec(), message.to_vec()];
    for seed in &seeds {
        ductstream_cdc::pgoutput::decode(Bytes::from(seed.clone())).expect("the seeds are valid pgoutput");
    }
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..ITERATIONS {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, 0);
        must_not_panic("pgoutput", &input, || {
            let _ = ductstream_cdc::pgoutput::decode(Bytes::from(input.clone()));
        });
    }
}
