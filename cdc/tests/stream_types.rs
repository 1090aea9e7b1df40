#![allow(clippy::expect_used)] // tests: a failed expectation is the report

//! Inserts, updates, deletes and truncate over a table with every built-in type, streamed
//! through a real Postgres: exact JSON values, keys, headers and commit order; unchanged
//! TOAST values marked as such.

mod common;

use std::sync::Arc;

use common::*;
use ductstream_cdc::{MemoryCheckpointStore, MemoryWriter};
use serde_json::json;

const SETUP: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TABLE all_types (
    id int PRIMARY KEY,
    c_int2 int2, c_int4 int4, c_int8 int8, c_int8_small int8,
    c_num numeric(20,5), c_num_nan numeric,
    c_f4 float4, c_f8 float8, c_f8_inf float8, c_f8_nan float8,
    c_bool bool, c_text text, c_varchar varchar(10), c_char char(3),
    c_bytea bytea, c_date date, c_time time, c_timetz timetz,
    c_ts timestamp, c_tstz timestamptz, c_interval interval, c_uuid uuid,
    c_json json, c_jsonb jsonb,
    c_int_arr int[], c_text_arr text[], c_2d int[][], c_tstz_arr timestamptz[],
    c_inet inet, c_cidr cidr, c_mac macaddr, c_money money,
    c_bit bit(4), c_varbit varbit, c_xml xml, c_point point,
    c_enum mood, c_enum_arr mood[], c_domain posint
);
"#;

const ROW1: &str = r#"
INSERT INTO all_types VALUES (
    1, -32768, 2147483647, 9007199254740993, 42,
    12345678901234.56789, 'NaN',
    1.5, 1.2345678901234567, 'Infinity', 'NaN',
    true, 'hello "world"', 'abc', 'ab',
    '\x0001ff', '2024-02-29', '13:14:15.5', '13:14:15+02',
    '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15+02', '1 year 2 months 3 days 04:05:06', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '{"b": 1, "a": [1, 2]}', '{"x": null, "n": 1.25}',
    '{1,NULL,3}', ARRAY['a b', 'c"d', NULL, 'NULL', 'back\slash'], '{{1,2},{3,4}}', ARRAY['2024-01-01 00:00:00+00'::timestamptz],
    '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 12.34,
    B'1010', B'101', '<a>1</a>', '(1,2)',
    'happy', '{happy,sad}', 42
);
"#;

fn expected_row1() -> serde_json::Value {
    json!({
        "id": 1, "c_int2": -32768, "c_int4": 2147483647, "c_int8": 9007199254740993_i64, "c_int8_small": 42,
        "c_num": "12345678901234.56789", "c_num_nan": "NaN",
        "c_f4": 1.5, "c_f8": 1.2345678901234567, "c_f8_inf": "Infinity", "c_f8_nan": "NaN",
        "c_bool": true, "c_text": "hello \"world\"", "c_varchar": "abc", "c_char": "ab ",
        "c_bytea": "AAH/", "c_date": "2024-02-29", "c_time": "13:14:15.5", "c_timetz": "13:14:15+02",
        "c_ts": "2024-02-29T13:14:15.123456", "c_tstz": "2024-02-29T11:14:15Z",
        "c_interval": "P1Y2M3DT4H5M6S", "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "c_json": {"a": [1, 2], "b": 1}, "c_jsonb": {"n": 1.25, "x": null},
        "c_int_arr": [1, null, 3], "c_text_arr": ["a b", "c\"d", null, "NULL", "back\\slash"],
        "c_2d": [[1, 2], [3, 4]], "c_tstz_arr": ["2024-01-01T00:00:00Z"],
        "c_inet": "192.168.0.1/24", "c_cidr": "10.0.0.0/8", "c_mac": "08:00:2b:01:02:03", "c_money": "$12.34",
        "c_bit": "1010", "c_varbit": "101", "c_xml": "<a>1</a>", "c_point": "(1,2)",
        "c_enum": "happy", "c_enum_arr": ["happy", "sad"], "c_domain": 42
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_streams_as_exact_json_in_commit_order() {
    let pg = cluster();
    let db = sql(&pg).await;
    db.batch_execute(SETUP).await.expect("setup");
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let flow = start(options(&pg, &[("publication_tables", "public.all_types")]), &writer, &store);
    flow.streaming().await;

    db.batch_execute(&format!("BEGIN; {ROW1} INSERT INTO all_types (id) VALUES (2); COMMIT;")).await.expect("insert");
    db.batch_execute("UPDATE all_types SET c_text = 'changed' WHERE id = 1").await.expect("update");
    db.batch_execute("DELETE FROM all_types WHERE id = 2").await.expect("delete");
    db.batch_execute("TRUNCATE all_types").await.expect("truncate");

    let topic = "cdc.public.all_types";
    wait_records(&writer, topic, 5).await;
    let records = writer.records(topic);
    let values = values(&writer, topic);
    let ops: Vec<&str> = values.iter().map(|v| v["op"].as_str().expect("op")).collect();
    assert_eq!(ops, ["c", "c", "u", "d", "t"]);

    // Row 1, every type.
    assert_eq!(values[0]["after"], expected_row1());
    assert_eq!(values[0]["before"], json!(null));
    assert_eq!(values[0]["key"], json!({"id": 1}));
    assert_eq!((values[0]["schema"].as_str(), values[0]["table"].as_str()), (Some("public"), Some("all_types")));
    assert_eq!(records[0].key.as_deref(), Some(&br#"{"id":1}"#[..]));
    // Row 2: NULL is null for every type.
    let row2 = values[1]["after"].as_object().expect("row 2");
    assert_eq!(row2.len(), expected_row1().as_object().expect("object").len());
    assert!(row2.iter().all(|(name, v)| name == "id" || v.is_null()), "{row2:?}");
    // Same transaction: same xid and commit LSN.
    assert_eq!(values[0]["xid"], values[1]["xid"]);
    assert_eq!(values[0]["lsn"], values[1]["lsn"]);

    let mut updated = expected_row1();
    updated["c_text"] = json!("changed");
    assert_eq!(values[2]["after"], updated);
    assert_eq!(values[2]["key"], json!({"id": 1}));

    assert_eq!(values[3]["key"], json!({"id": 2}));
    assert_eq!(values[3]["before"], json!({"id": 2}));
    assert_eq!(values[3]["after"], json!(null));

    assert_eq!(values[4]["key"], json!(null));
    assert!(records[4].key.is_none());

    // Commit order: LSNs and xids grow.
    let lsns: Vec<_> = values.iter().map(lsn).collect();
    assert!(lsns.windows(2).all(|w| w[0] <= w[1]) && lsns[1] < lsns[2] && lsns[3] < lsns[4], "{lsns:?}");

    // Headers.
    let header = |i: usize, name: &str| String::from_utf8(records[i].header(name).expect(name).to_vec()).expect("utf8");
    assert_eq!(header(2, "ductstream.op"), "u");
    assert_eq!(header(2, "ductstream.format"), "json");
    assert_eq!(header(2, "ductstream.lsn"), values[2]["lsn"].as_str().expect("lsn"));
    assert_eq!(header(2, "ductstream.xid"), values[2]["xid"].to_string());
    assert_eq!(header(4, "ductstream.op"), "t");

    flow.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_toast_is_marked_not_null_and_full_identity_gives_before() {
    let pg = cluster();
    let db = sql(&pg).await;
    db.batch_execute(
        "CREATE TABLE toasty (id int PRIMARY KEY, big text, small int);
         CREATE TABLE fully (id int PRIMARY KEY, v text);
         ALTER TABLE fully REPLICA IDENTITY FULL;",
    )
    .await
    .expect("setup");
    let writer = Arc::new(MemoryWriter::new());
    let store = Arc::new(MemoryCheckpointStore::new());
    let flow = start(options(&pg, &[("publication_tables", "toasty,fully")]), &writer, &store);
    flow.streaming().await;

    // Random hex does not compress below the TOAST threshold, so the value is stored out of line.
    db.batch_execute(
        "INSERT INTO toasty SELECT 1, string_agg(md5(random()::text), '') FROM generate_series(1, 4000), (VALUES (1)) v(small) GROUP BY small;
         UPDATE toasty SET small = 2 WHERE id = 1;
         UPDATE toasty SET big = NULL WHERE id = 1;
         INSERT INTO fully VALUES (1, 'a');
         UPDATE fully SET v = 'b';",
    )
    .await
    .expect("changes");
    wait_records(&writer, "cdc.public.toasty", 3).await;
    wait_records(&writer, "cdc.public.fully", 2).await;
    let toasty = values(&writer, "cdc.public.toasty");
    assert_eq!(toasty[0]["after"]["big"].as_str().map(str::len), Some(128_000));
    assert_eq!(toasty[1]["after"], json!({"id": 1, "small": 2}));
    assert_eq!(toasty[1]["unchanged_toast"], json!(["big"]));
    assert_eq!(toasty[2]["after"], json!({"id": 1, "big": null, "small": 2}));
    assert_eq!(toasty[2]["unchanged_toast"], json!([]));

    let fully = values(&writer, "cdc.public.fully");
    assert_eq!(fully[1]["before"], json!({"id": 1, "v": "a"}));
    assert_eq!(fully[1]["after"], json!({"id": 1, "v": "b"}));
    assert_eq!(fully[1]["key"], json!({"id": 1}));
    flow.stop().await.expect("clean stop");
}
