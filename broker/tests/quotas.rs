//! DescribeClientQuotas and AlterClientQuotas in each advertised version (kafka-configs speaks
//! the newest; compat-tests/test_quotas.py drives it): set, described back, `validate_only`
//! storing nothing; a `request_percentage` quota throttles every kind of request.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{AlterClientQuotasRequest, ApiKey, DescribeClientQuotasRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;

fn alter(user: &str, rate: f64, validate_only: bool) -> AlterClientQuotasRequest {
    set_quota("user", user, "producer_byte_rate", rate, validate_only)
}

fn set_quota(entity_type: &'static str, name: &str, key: &'static str, value: f64, validate_only: bool) -> AlterClientQuotasRequest {
    let entity = EntityData::default().with_entity_type(StrBytes::from_static_str(entity_type)).with_entity_name(Some(StrBytes::from_string(name.into())));
    let op = OpData::default().with_key(StrBytes::from_static_str(key)).with_value(value);
    AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(vec![entity]).with_ops(vec![op])])
        .with_validate_only(validate_only)
}

fn describe(user: &str) -> DescribeClientQuotasRequest {
    let exact = ComponentData::default()
        .with_entity_type(StrBytes::from_static_str("user"))
        .with_match_type(0)
        .with_match(Some(StrBytes::from_string(user.into())));
    DescribeClientQuotasRequest::default().with_components(vec![exact]).with_strict(true)
}

#[test]
fn every_version_sets_and_describes_quotas() {
    let (_dir, broker) = common::temp_broker(&[]);
    let mut client = broker.client();
    for version in 0..=1 {
        let user = format!("alice-v{version}");
        let checked = expect_kind!(client.call(ApiKey::AlterClientQuotas, version, &alter(&user, 2048.0, true)), AlterClientQuotas);
        assert_eq!(checked.entries[0].error_code, 0);
        let described = expect_kind!(client.call(ApiKey::DescribeClientQuotas, version, &describe(&user)), DescribeClientQuotas);
        assert_eq!(described.entries.expect("entries").len(), 0, "validate_only stored nothing");

        let set = expect_kind!(client.call(ApiKey::AlterClientQuotas, version, &alter(&user, 1024.0, false)), AlterClientQuotas);
        assert_eq!(set.entries[0].error_code, 0);
        let described = expect_kind!(client.call(ApiKey::DescribeClientQuotas, version, &describe(&user)), DescribeClientQuotas);
        assert_eq!(described.error_code, 0);
        let entries = described.entries.expect("entries");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].entity[0].entity_name.as_ref().map(|n| n.to_string()), Some(user.clone()));
        assert_eq!((entries[0].values[0].key.to_string(), entries[0].values[0].value), ("producer_byte_rate".to_string(), 1024.0));

        let refused = expect_kind!(client.call(ApiKey::AlterClientQuotas, version, &alter(&user, 0.5, false)), AlterClientQuotas);
        assert_eq!(refused.entries[0].error_code, 42, "INVALID_REQUEST");
    }
}

#[test]
fn a_request_percentage_quota_throttles_any_request_and_holds_the_connection() {
    let (_dir, broker) = common::temp_broker(&[]);
    let mut client = broker.client();
    // The harness's client id gets a hundredth of a percent of a thread: 100 µs a second.
    let set = expect_kind!(
        client.call(ApiKey::AlterClientQuotas, 1, &set_quota("client-id", "ductstream-tests", "request_percentage", 0.01, false)),
        AlterClientQuotas
    );
    assert_eq!(set.entries[0].error_code, 0);
    let metadata = MetadataRequest::default().with_topics(Some(vec![]));
    let mut throttle_ms = 0;
    for _ in 0..10_000 {
        let response = expect_kind!(client.call(ApiKey::Metadata, 12, &metadata), Metadata);
        throttle_ms = response.throttle_time_ms;
        if throttle_ms > 0 {
            break;
        }
    }
    assert!(throttle_ms > 0, "Metadata requests were never throttled");
    // The connection is not read from until the throttle has passed.
    let asked = Instant::now();
    let _ = expect_kind!(client.call(ApiKey::Metadata, 12, &metadata), Metadata);
    let waited = asked.elapsed();
    assert!(waited >= Duration::from_millis(throttle_ms as u64 * 9 / 10), "answered after {waited:?}, throttled for {throttle_ms} ms");
}
