//! Idempotent producers: a retried batch gets its first offset back, a gap is refused, and
//! producer state survives a restart.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::requests::{create_topic, fetch_now, produce_one};
use common::{Broker, Client};
use ductstream_storage::testsuite::make_batch;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, ProducerId};

fn init_producer(client: &mut Client, version: i16) -> (i64, i16) {
    let request = InitProducerIdRequest::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1).with_transaction_timeout_ms(60_000);
    let r = expect_kind!(client.call(ApiKey::InitProducerId, version, &request), InitProducerId);
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

#[test]
fn retries_get_their_offsets_back_and_gaps_are_refused_on_the_embedded_store() {
    retries_get_their_offsets_back_and_gaps_are_refused(&["--storage", "embedded"]);
}

fn retries_get_their_offsets_back_and_gaps_are_refused(engine: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (id, epoch);
    {
        let broker = Broker::start(&data, engine);
        let mut c = broker.client();
        create_topic(&mut c, "idem", 1, &[]);
        let mut ids = Vec::new();
        for version in 0..=4 {
            ids.push(init_producer(&mut c, version).0);
        }
        ids.dedup();
        assert_eq!(ids.len(), 5, "every InitProducerId gets a new id");
        (id, epoch) = init_producer(&mut c, 4);

        assert_eq!(produce_one(&mut c, "idem", 0, make_batch(3, 0, Some((id, epoch, 0)))), (0, 0));
        assert_eq!(produce_one(&mut c, "idem", 0, make_batch(2, 0, Some((id, epoch, 3)))), (0, 3));
        assert_eq!(produce_one(&mut c, "idem", 0, make_batch(3, 0, Some((id, epoch, 0)))), (0, 0), "a retry of the first batch");
        assert_eq!(produce_one(&mut c, "idem", 0, make_batch(1, 0, Some((id, epoch, 9)))).0, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
        assert_eq!(fetch_now(&mut c, "idem", 0, 0).1, 5, "retries and gaps stored nothing");
        broker.kill();
    }
    let broker = Broker::start(&data, engine);
    let mut c = broker.client();
    assert_eq!(produce_one(&mut c, "idem", 0, make_batch(2, 0, Some((id, epoch, 3)))), (0, 3), "a retry after a restart");
    assert_eq!(produce_one(&mut c, "idem", 0, make_batch(1, 0, Some((id, epoch, 5)))), (0, 5));
    assert!(init_producer(&mut c, 4).0 > id, "producer ids are not reused after a restart");

    // KIP-360: bumping the epoch restarts sequences at 0; the old epoch is fenced.
    let bump = InitProducerIdRequest::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch).with_transaction_timeout_ms(60_000);
    let r = expect_kind!(c.call(ApiKey::InitProducerId, 4, &bump), InitProducerId);
    assert_eq!((r.error_code, r.producer_id.0, r.producer_epoch), (0, id, epoch + 1));
    assert_eq!(produce_one(&mut c, "idem", 0, make_batch(1, 0, Some((id, epoch + 1, 0)))), (0, 6));
    assert_eq!(produce_one(&mut c, "idem", 0, make_batch(1, 0, Some((id, epoch, 6)))).0, 47, "INVALID_PRODUCER_EPOCH");
}

/// A transactional batch as a client sends it: `make_batch`'s, marked transactional.
fn transactional_batch(producer_id: i64, epoch: i16, sequence: i32) -> bytes::Bytes {
    let mut bytes = make_batch(2, 0, Some((producer_id, epoch, sequence))).to_vec();
    let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | 0x10;
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes.into()
}

/// Transactional batches go only to partitions added to the producer's open transaction, from
/// its current epoch; control batches come only from the broker. A refused batch stores
/// nothing.
#[test]
fn transactional_batches_need_their_partition_in_the_open_transaction() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, EndTxnRequest, TransactionalId};

    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let mut c = broker.client();
    create_topic(&mut c, "txn", 1, &[]);
    let txn = || TransactionalId(common::str("tx"));
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn()))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_transaction_timeout_ms(60_000);
    let r = expect_kind!(c.call(ApiKey::InitProducerId, 4, &init), InitProducerId);
    assert_eq!(r.error_code, 0);
    let (id, epoch) = (r.producer_id.0, r.producer_epoch);

    let produce_in_txn = |c: &mut Client, batch: bytes::Bytes| {
        let request = common::requests::produce("txn", 0, batch, -1).with_transactional_id(Some(txn()));
        let response = expect_kind!(c.call(ApiKey::Produce, 9, &request), Produce);
        response.responses[0].partition_responses[0].error_code
    };
    assert_eq!(produce_in_txn(&mut c, transactional_batch(id, epoch, 0)), 48, "INVALID_TXN_STATE: the partition was not added");
    let marker = ductstream_broker::batch_builder::transaction_marker(id, epoch, true, 0).expect("marker");
    assert_eq!(produce_in_txn(&mut c, marker.bytes().clone()), 87, "INVALID_RECORD: clients do not write markers");
    assert_eq!(produce_one(&mut c, "txn", 0, transactional_batch(id, epoch, 0)).0, 48, "a transactional batch needs the transactional id");

    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn())
        .with_v3_and_below_producer_id(ProducerId(id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default().with_name(common::name("txn")).with_partitions(vec![0])]);
    let r = expect_kind!(c.call(ApiKey::AddPartitionsToTxn, 3, &add), AddPartitionsToTxn);
    assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0);
    assert_eq!(produce_in_txn(&mut c, transactional_batch(id, epoch - 1, 0)), 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(produce_in_txn(&mut c, transactional_batch(id, epoch, 0)), 0);
    let end = EndTxnRequest::default().with_transactional_id(txn()).with_producer_id(ProducerId(id)).with_producer_epoch(epoch).with_committed(true);
    assert_eq!(expect_kind!(c.call(ApiKey::EndTxn, 3, &end), EndTxn).error_code, 0);
    // Two records and the commit marker: only the accepted batch was stored.
    assert_eq!(fetch_now(&mut c, "txn", 0, 0).1, 3);
}
