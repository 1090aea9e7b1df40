#![allow(clippy::expect_used)] // tests: a failed expectation is the report
//! The avro and proto formats, decoded by independent implementations (apache-avro with the
//! published schema, prost with the published .proto).

use apache_avro::types::Value as Avro;
use ductstream_cdc::encode::encode_change;
use ductstream_cdc::event::{ChangeEvent, ColumnValue, Op, Row};
use ductstream_cdc::wire::{AVRO_SCHEMA, WireFormat};
use ductstream_cdc::wire_json::decoded;
use prost::Message;
use serde_json::json;

fn event() -> ChangeEvent {
    let row = |name: &str| {
        Row(vec![
            ("id".into(), ColumnValue::Value(json!(9_007_199_254_740_993_i64))),
            ("price".into(), ColumnValue::Value(json!("12345678901234567890.0123456789"))),
            ("name".into(), ColumnValue::Value(json!(name))),
            ("note".into(), ColumnValue::Value(serde_json::Value::Null)),
            ("big".into(), ColumnValue::UnchangedToast),
        ])
    };
    ChangeEvent {
        op: Op::Update,
        schema: "public".into(),
        table: "items".into(),
        key: Some(Row(vec![("id".into(), ColumnValue::Value(json!(9_007_199_254_740_993_i64)))])),
        before: None,
        after: Some(row("new")),
        lsn: "16/B374D848".parse().expect("lsn"),
        commit_ts_micros: 1_700_000_000_123_456,
        xid: Some(750),
    }
}

fn header(record: &ductstream_cdc::OutRecord, name: &str) -> String {
    String::from_utf8(record.header(name).expect("header").to_vec()).expect("utf-8")
}

#[test]
fn avro_values_decode_with_the_published_schema() {
    let record = encode_change(&event(), WireFormat::Avro);
    assert_eq!(header(&record, "ductstream.format"), "avro");
    assert_eq!(record.key.as_deref(), Some(&br#"{"id":9007199254740993}"#[..]), "keys stay JSON");
    let schema = apache_avro::Schema::parse_str(AVRO_SCHEMA).expect("the schema parses");
    let value = record.value.expect("value");
    let mut reader = &value[..];
    let decoded = apache_avro::from_avro_datum(&schema, &mut reader, None).expect("decodes");
    assert!(reader.is_empty(), "the datum is read whole");
    let Avro::Record(fields) = decoded else { panic!("a record: {decoded:?}") };
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).expect(name);
    assert_eq!(field("op"), Avro::String("u".into()));
    assert_eq!(field("table"), Avro::String("items".into()));
    assert_eq!(field("lsn"), Avro::String("16/B374D848".into()));
    assert_eq!(field("xid"), Avro::Union(1, Box::new(Avro::Long(750))));
    assert_eq!(field("commit_ts_micros"), Avro::TimestampMicros(1_700_000_000_123_456));
    assert_eq!(field("before"), Avro::Union(0, Box::new(Avro::Null)));
    assert_eq!(field("unchanged_toast"), Avro::Array(vec![Avro::String("big".into())]));
    let Avro::Union(1, after) = field("after") else { panic!("after is present") };
    let Avro::Array(columns) = *after else { panic!("columns") };
    let pairs: Vec<(String, String)> = columns
        .into_iter()
        .map(|c| match c {
            Avro::Record(f) => match (&f[0].1, &f[1].1) {
                (Avro::String(n), Avro::String(j)) => (n.clone(), j.clone()),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("id".to_string(), "9007199254740993".to_string()),
            ("price".to_string(), "\"12345678901234567890.0123456789\"".to_string()),
            ("name".to_string(), "\"new\"".to_string()),
            ("note".to_string(), "null".to_string()),
        ],
        "values keep the json mapping exactly"
    );
}

#[test]
fn proto_values_decode_as_the_change_event_message() {
    let record = encode_change(&event(), WireFormat::Proto);
    assert_eq!(header(&record, "ductstream.format"), "proto");
    let decoded = ductstream_proto::v1::ChangeEvent::decode(record.value.expect("value")).expect("decodes");
    assert_eq!((decoded.op.as_str(), decoded.schema.as_str(), decoded.table.as_str()), ("u", "public", "items"));
    assert_eq!((decoded.xid, decoded.commit_ts_micros, decoded.lsn.as_str()), (Some(750), 1_700_000_000_123_456, "16/B374D848"));
    assert_eq!(decoded.key[0].json, "9007199254740993");
    let after = decoded.after.expect("after");
    assert_eq!(after.columns.len(), 4);
    assert_eq!(after.columns[1].json, "\"12345678901234567890.0123456789\"");
    assert!(decoded.before.is_none());
    assert_eq!(decoded.unchanged_toast, vec!["big".to_string()]);
}

#[test]
fn json_stays_the_default() {
    let options = ductstream_cdc::FlowSourceOptions::from_map(&[("dsn".to_string(), "postgres://x@y/z".to_string())].into()).expect("options");
    assert_eq!(options.format, WireFormat::Json);
    let avro = ductstream_cdc::FlowSourceOptions::from_map(
        &[("dsn".to_string(), "postgres://x@y/z".to_string()), ("format".to_string(), "avro".to_string())].into(),
    )
    .expect("options");
    assert_eq!(avro.format, WireFormat::Avro);
    assert!(
        ductstream_cdc::FlowSourceOptions::from_map(
            &[("dsn".to_string(), "postgres://x@y/z".to_string()), ("format".to_string(), "xml".to_string())].into()
        )
        .is_err()
    );
}

#[test]
fn avro_and_proto_values_read_back_as_json_for_people() {
    let expected = json!({
        "op": "u", "schema": "public", "table": "items",
        "key": {"id": 9_007_199_254_740_993_i64},
        "before": null,
        "after": {"id": 9_007_199_254_740_993_i64, "price": "12345678901234567890.0123456789", "name": "new", "note": null},
        "unchanged_toast": ["big"], "lsn": "16/B374D848", "xid": 750, "commit_ts_micros": 1_700_000_000_123_456_i64,
    });
    for format in [WireFormat::Avro, WireFormat::Proto] {
        let value = encode_change(&event(), format).value.expect("value");
        assert_eq!(decoded(format.name(), &value), Some(expected.clone()), "{}", format.name());
        // Cut short, or with bytes after it, it is not a change event.
        assert_eq!(decoded(format.name(), &value[..value.len() - 3]), None, "{}", format.name());
    }
    let mut longer = encode_change(&event(), WireFormat::Avro).value.expect("value").to_vec();
    longer.push(0);
    assert_eq!(decoded("avro", &longer), None);
    assert_eq!(decoded("json", b"{}"), None);

    // Written by another encoder (apache-avro), a datum reads the same.
    let schema = apache_avro::Schema::parse_str(AVRO_SCHEMA).expect("the schema parses");
    let column = |name: &str, json: &str| Avro::Record(vec![("name".into(), Avro::String(name.into())), ("json".into(), Avro::String(json.into()))]);
    let datum = Avro::Record(vec![
        ("op".into(), Avro::String("d".into())),
        ("schema".into(), Avro::String("public".into())),
        ("table".into(), Avro::String("t".into())),
        ("key".into(), Avro::Array(vec![column("id", "1")])),
        ("before".into(), Avro::Union(1, Box::new(Avro::Array(vec![column("id", "1"), column("n", "\"x\"")])))),
        ("after".into(), Avro::Union(0, Box::new(Avro::Null))),
        ("unchanged_toast".into(), Avro::Array(vec![])),
        ("lsn".into(), Avro::String("0/1".into())),
        ("xid".into(), Avro::Union(0, Box::new(Avro::Null))),
        ("commit_ts_micros".into(), Avro::TimestampMicros(-5)),
    ]);
    let bytes = apache_avro::to_avro_datum(&schema, datum).expect("encodes");
    let read = decoded("avro", &bytes).expect("decodes");
    assert_eq!(read["before"], json!({"id": 1, "n": "x"}));
    assert_eq!((read["op"].as_str(), read["after"].is_null(), read["xid"].is_null(), read["commit_ts_micros"].as_i64()), (Some("d"), true, true, Some(-5)));
}
