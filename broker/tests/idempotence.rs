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

#[test]
fn transactional_producers_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let mut c = broker.client();
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(common::str("tx"))))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = expect_kind!(c.call(ApiKey::InitProducerId, 4, &request), InitProducerId);
    assert_eq!(r.error_code, 42, "INVALID_REQUEST");
}
