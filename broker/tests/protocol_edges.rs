//! Bad input on the wire: the offending connection fails alone, the broker keeps serving, and
//! no stored data changes.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use bytes::{BufMut, BytesMut};
use common::requests::{create_topic, fetch_now, produce_one};
use common::{Broker, Client};
use ductstream_storage::testsuite::make_batch;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest, ProduceRequest};

fn broker() -> (tempfile::TempDir, Broker) {
    common::temp_broker(&[])
}

/// The broker still answers a fresh connection.
fn still_serving(broker: &Broker) {
    let mut client = broker.client();
    let response = expect_kind!(client.call(ApiKey::Metadata, 12, &MetadataRequest::default()), Metadata);
    assert_eq!(response.brokers.len(), 1);
}

#[test]
fn api_versions_advertises_exactly_the_implemented_table() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    for version in 0..=4 {
        let response = expect_kind!(client.call(ApiKey::ApiVersions, version, &ApiVersionsRequest::default()), ApiVersions);
        assert_eq!(response.error_code, 0);
        let advertised: Vec<(i16, i16, i16)> = response.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect();
        let implemented: Vec<(i16, i16, i16)> =
            ductstream_broker::api::SUPPORTED.iter().map(|(k, min, max)| (*k as i16, *min, *max)).collect();
        assert_eq!(advertised, implemented, "v{version}");
    }
}

#[test]
fn api_versions_from_the_future_gets_a_v0_answer_kip_511() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    // A v9 ApiVersions request: header v2 (flexible), empty tagged body.
    // The codec cannot encode a version it does not know, so build the frame by hand.
    let correlation = 77;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(9);
    body.put_i32(correlation);
    body.put_i16(1);
    body.put_slice(b"x");
    body.put_u8(0); // header tagged fields
    body.put_u8(0); // body tagged fields
    let mut raw = BytesMut::new();
    raw.put_i32(body.len() as i32);
    raw.put_slice(&body);
    client.send_raw(&raw).expect("send");
    let reply = client.read_frame().expect("a response, not a closed connection");
    let (got, response) = Client::decode(ApiKey::ApiVersions, 0, reply);
    assert_eq!(got, correlation);
    let response = expect_kind!(response, ApiVersions);
    assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(response.api_keys.iter().any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 4));
}

#[test]
fn garbage_unknown_keys_and_unsupported_versions_close_only_that_connection() {
    let (_dir, broker) = broker();

    let mut garbage = broker.client();
    garbage.send_raw(&[0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8]).expect("send");
    assert!(garbage.is_closed(), "unknown api key 0xdead closes the connection");

    let mut unsupported = broker.client();
    // Produce v2 predates record batches v2: not implemented.
    let (_, frame) = unsupported.frame(ApiKey::Produce, 3, &ProduceRequest::default());
    let mut frame = BytesMut::from(&frame[..]);
    frame[6..8].copy_from_slice(&2i16.to_be_bytes());
    unsupported.send_raw(&frame).expect("send");
    assert!(unsupported.is_closed(), "unsupported version closes the connection");

    let mut truncated = broker.client();
    let (_, frame) = truncated.frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    let mut short = BytesMut::from(&frame[..]);
    let len = (short.len() - 4 - 3) as i32;
    short[..4].copy_from_slice(&len.to_be_bytes());
    short.truncate(short.len() - 3);
    truncated.send_raw(&short).expect("send");
    assert!(truncated.is_closed(), "a request cut short inside its body closes the connection");

    let mut too_short = broker.client();
    too_short.send_raw(&[0, 0, 0, 2, 0, 3]).expect("send");
    assert!(too_short.is_closed());

    still_serving(&broker);
}

#[test]
fn an_array_count_of_two_billion_in_a_tiny_request_is_refused_not_allocated() {
    let (_dir, broker) = broker();
    // CreateTopics v2: header v1 (api key, version, correlation id, client id), then the
    // topics array's count, 2^31-1, and nothing after it. Reserving the count as stated asks
    // for hundreds of gigabytes; the failed allocation used to abort the broker.
    for (api, version) in [(19i16, 2i16), (3, 1), (0, 3)] {
        let mut client = broker.client();
        let mut body = BytesMut::new();
        body.put_i16(api);
        body.put_i16(version);
        body.put_i32(1);
        body.put_i16(1);
        body.put_slice(b"x");
        if api == 0 {
            body.put_i16(-1); // Produce v3: transactional id (null), acks, timeout
            body.put_i16(1);
            body.put_i32(1000);
        }
        body.put_i32(i32::MAX);
        let mut raw = BytesMut::new();
        raw.put_i32(body.len() as i32);
        raw.put_slice(&body);
        client.send_raw(&raw).expect("send");
        assert!(client.is_closed(), "api {api} v{version}: an array longer than the request closes the connection");
    }
    still_serving(&broker);
}

#[test]
fn a_two_gib_frame_is_refused_without_allocating_it() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    client.send_raw(&[0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 0]).expect("send");
    assert!(client.is_closed());
    let mut negative = broker.client();
    negative.send_raw(&[0xff, 0xff, 0xff, 0xff]).expect("send");
    assert!(negative.is_closed());
    still_serving(&broker);
    assert!(broker.stderr().contains("exceeds socket.request.max.bytes"), "the log says why");
}

#[test]
fn a_client_that_disconnects_mid_frame_does_not_hurt_others() {
    let (_dir, broker) = broker();
    {
        let mut client = broker.client();
        client.send_raw(&[0, 0, 1, 0, 0, 3, 0, 12]).expect("send"); // says 256 bytes, sends 4
    }
    still_serving(&broker);
}

#[test]
fn a_batch_with_a_bad_crc_is_refused_and_nothing_is_stored() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "crc", 1, &[]);
    let good = make_batch(2, 1000, None);
    assert_eq!(produce_one(&mut client, "crc", 0, good.clone()), (0, 0));
    let mut bad = BytesMut::from(&good[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let (code, offset) = produce_one(&mut client, "crc", 0, bad.freeze());
    assert_eq!((code, offset), (2, -1), "CORRUPT_MESSAGE");
    let (code, hw, records) = fetch_now(&mut client, "crc", 0, 0);
    assert_eq!((code, hw), (0, 2), "high watermark unchanged");
    assert_eq!(&records[8..], &good[8..], "stored bytes unchanged");

    let mut two = BytesMut::from(&good[..]);
    two.put_slice(&good);
    assert_eq!(produce_one(&mut client, "crc", 0, two.freeze()).0, 87, "INVALID_RECORD: two batches in one partition");
    assert_eq!(produce_one(&mut client, "crc", 0, good.slice(..40)).0, 2, "truncated batch is CORRUPT_MESSAGE");
    let mut v1 = BytesMut::from(&good[..]);
    v1[16] = 1;
    assert_eq!(produce_one(&mut client, "crc", 0, v1.freeze()).0, 87, "magic 1 is INVALID_RECORD");
    assert_eq!(fetch_now(&mut client, "crc", 0, 0).1, 2);
}

#[test]
fn oversized_batches_get_message_too_large() {
    let (_dir, broker) = broker();
    let mut client = broker.client();
    create_topic(&mut client, "small", 1, &[("max.message.bytes", "200")]);
    let big = make_batch(20, 0, None);
    assert!(big.len() > 200);
    assert_eq!(produce_one(&mut client, "small", 0, big).0, 10, "MESSAGE_TOO_LARGE");
    assert_eq!(produce_one(&mut client, "small", 0, make_batch(1, 0, None)), (0, 0));
}

#[test]
fn requests_larger_than_the_socket_limit_close_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &["--socket-request-max-bytes", "1024"]);
    let mut client = broker.client();
    create_topic(&mut client, "limit", 1, &[]);
    let (_, frame) = client.frame(ApiKey::Produce, 9, &common::requests::produce("limit", 0, make_batch(100, 0, None), -1));
    assert!(frame.len() > 1024);
    client.send_raw(&frame).expect("send");
    assert!(client.is_closed());
    let mut other = broker.client();
    assert_eq!(fetch_now(&mut other, "limit", 0, 0).1, 0, "nothing stored");
}

#[test]
fn unknown_topics_and_partitions_get_error_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &["--auto-create-topics", "false"]);
    let mut client = broker.client();
    assert_eq!(produce_one(&mut client, "nowhere", 0, make_batch(1, 0, None)).0, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(fetch_now(&mut client, "nowhere", 0, 0).0, 3);
    create_topic(&mut client, "one", 1, &[]);
    assert_eq!(produce_one(&mut client, "one", 1, make_batch(1, 0, None)).0, 3);
    let metadata = kafka_protocol::messages::MetadataRequest::default()
        .with_topics(Some(vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(common::name("nowhere")))]))
        .with_allow_auto_topic_creation(true);
    let response = expect_kind!(client.call(ApiKey::Metadata, 12, &metadata), Metadata);
    assert_eq!(response.topics[0].error_code, 3, "auto-creation is off on this broker");
    let bad = kafka_protocol::messages::MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(common::name("bad/name"))),
    ]));
    let response = expect_kind!(client.call(ApiKey::Metadata, 12, &bad), Metadata);
    assert_eq!(response.topics[0].error_code, 3);
}
