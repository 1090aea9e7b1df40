//! DescribeClientQuotas and AlterClientQuotas in each advertised version (kafka-configs speaks
//! the newest; compat-tests/test_quotas.py drives it): set, described back, `validate_only`
//! storing nothing.

#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiKey, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

fn alter(user: &str, rate: f64, validate_only: bool) -> AlterClientQuotasRequest {
    let entity = EntityData::default().with_entity_type(StrBytes::from_static_str("user")).with_entity_name(Some(StrBytes::from_string(user.into())));
    let op = OpData::default().with_key(StrBytes::from_static_str("producer_byte_rate")).with_value(rate);
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
