//! Probe of the duckdb crate against the prebuilt libduckdb.so (see build.rs): upserts, MERGE,
//! transactions, the Appender, and the column types a DuckDB sink would write.

/// The version of the libduckdb.so this process loaded (for the broker's link test).
pub fn library_version() -> duckdb::Result<String> {
    duckdb::Connection::open_in_memory()?.query_row("SELECT version()", [], |r| r.get(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use duckdb::types::{Decimal, TimeUnit, Value};
    use duckdb::{Connection, params};

    fn temp_db() -> (std::path::PathBuf, std::path::PathBuf) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("duckdb-probe-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("probe.duckdb");
        (dir, file)
    }

    fn open(file: &std::path::Path) -> Connection {
        let conn = Connection::open(file).unwrap();
        // Never reach for the network for an extension.
        conn.execute_batch(
            "SET autoinstall_known_extensions = false; SET autoload_known_extensions = false; SET TimeZone = 'UTC';",
        )
        .unwrap_or_else(|e| eprintln!("settings: {e}"));
        conn
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<(i32, String)> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn duckdb_probe_upserts_merge_transaction_appender() {
        let (dir, file) = temp_db();
        let conn = open(&file);
        let version: String = conn
            .query_row("SELECT version()", [], |r| r.get(0))
            .unwrap();
        eprintln!("PROBE version() = {version}");
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v VARCHAR)")
            .unwrap();

        conn.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", params![1, "a"])
            .unwrap();
        conn.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", params![1, "b"])
            .unwrap();
        conn.execute(
            "INSERT INTO t VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
            params![2, "x"],
        )
        .unwrap();
        assert_eq!(
            rows(&conn, "SELECT id, v FROM t ORDER BY id"),
            vec![(1, "b".into()), (2, "x".into())]
        );
        eprintln!("PROBE INSERT OR REPLACE + ON CONFLICT: ok");

        let merge = conn.execute(
            "MERGE INTO t USING (VALUES (2, 'merged'), (3, 'new')) AS s(id, v) ON t.id = s.id \
             WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)",
            [],
        );
        eprintln!("PROBE MERGE result = {merge:?}");
        assert_eq!(merge.unwrap(), 2);
        // MERGE with a delete branch and a parameterised source
        let merge_del = conn.execute(
            "MERGE INTO t USING (SELECT ?::INTEGER AS id) AS s ON t.id = s.id \
             WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'ins')",
            params![3],
        );
        eprintln!("PROBE MERGE ... DELETE result = {merge_del:?}");
        assert_eq!(
            rows(&conn, "SELECT id, v FROM t ORDER BY id"),
            vec![(1, "b".into()), (2, "merged".into())]
        );

        // transactions: rollback discards, commit keeps
        let mut conn = conn;
        {
            let tx = conn.transaction().unwrap();
            tx.execute("INSERT INTO t VALUES (10, 'rolled back')", [])
                .unwrap();
            tx.rollback().unwrap();
        }
        {
            let tx = conn.transaction().unwrap();
            tx.execute("INSERT OR REPLACE INTO t VALUES (1, 'in tx')", [])
                .unwrap();
            tx.commit().unwrap();
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE id = 10", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        eprintln!("PROBE transaction commit/rollback: ok");

        // Appender: plain rows, then a duplicate key (the PK is checked at flush)
        {
            let mut app = conn.appender("t").unwrap();
            app.append_rows([
                [20.to_string(), "app1".to_string()],
                [21.to_string(), "app2".to_string()],
            ])
            .unwrap();
            app.append_row(params![22, "app3"]).unwrap();
            app.flush().unwrap();
        }
        let dup = {
            let mut app = conn.appender("t").unwrap();
            app.append_row(params![20, "dup"]).and_then(|_| app.flush())
        };
        eprintln!("PROBE Appender duplicate PK = {dup:?}");
        assert!(dup.is_err());
        // Appender inside a transaction
        {
            let tx = conn.transaction().unwrap();
            {
                let mut app = tx.appender("t").unwrap();
                app.append_row(params![30, "tx-app"]).unwrap();
                app.flush().unwrap();
            }
            tx.commit().unwrap();
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        eprintln!("PROBE rows after appender = {n}");
        assert_eq!(n, 6);
        drop(conn);

        // reopen the file: data is durable
        let conn = open(&file);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6);
        drop(conn);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn duckdb_probe_types_and_extensions() {
        let (dir, file) = temp_db();
        let conn = open(&file);

        let mut stmt = conn
            .prepare("SELECT extension_name, loaded, installed, install_mode FROM duckdb_extensions() ORDER BY 1")
            .unwrap();
        let exts: Vec<(String, bool, bool, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for e in &exts {
            if e.1 || e.2 {
                eprintln!("PROBE extension {e:?}");
            }
        }

        let json = conn.query_row(
            r#"SELECT json_extract('{"a": {"b": [1, 2]}}', '$.a.b[1]')::VARCHAR, '{"x":1}'::JSON::VARCHAR"#,
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        );
        eprintln!("PROBE json = {json:?}");

        conn.execute_batch(
            "CREATE TABLE ty (id INTEGER PRIMARY KEY, d DECIMAL(38,10), ts TIMESTAMPTZ, j JSON, u UUID, b BLOB, l INTEGER[])",
        )
        .unwrap();
        // parameters
        let dec = Decimal::new(38, 10, 12_345_678_901_234_567_890_123_456_789_012_345_678).unwrap();
        let uuid = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
        let ins = conn.execute(
            "INSERT INTO ty VALUES (?, ?, ?, ?::JSON, ?::UUID, ?, [1, 2, 3])",
            params![
                1,
                dec,
                Value::Timestamp(TimeUnit::Microsecond, 1_700_000_000_123_456),
                r#"{"k": [1, "two"]}"#,
                uuid,
                vec![0u8, 255, 7]
            ],
        );
        eprintln!("PROBE insert typed params = {ins:?}");
        ins.unwrap();
        conn.execute(
            "INSERT INTO ty VALUES (2, '-0.0000000001', '2024-01-02 03:04:05.678901+02:00', '[]', gen_random_uuid(), '\\x00\\xFF'::BLOB, [])",
            [],
        )
        .unwrap();
        // appender with typed values (list omitted: the row appender has no LIST support)
        let app = (|| {
            let mut app = conn.appender_with_columns("ty", &["id", "d", "ts", "j", "u", "b"])?;
            app.append_row(params![
                3,
                Decimal::new(38, 10, -5).unwrap(),
                Value::Timestamp(TimeUnit::Microsecond, 0),
                r#"{"a":true}"#,
                uuid,
                vec![1u8, 2]
            ])?;
            app.flush()
        })();
        eprintln!("PROBE appender typed row = {app:?}");
        let app_list = (|| {
            let mut app = conn.appender("ty")?;
            app.append_row(params![
                4,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::List(vec![Value::Int(1)])
            ])?;
            app.flush()
        })();
        eprintln!("PROBE appender LIST value = {app_list:?}");

        let mut stmt = conn
            .prepare("SELECT id, d, ts, j, u, b, l, d::VARCHAR, ts::VARCHAR, typeof(j), u::VARCHAR FROM ty ORDER BY id")
            .unwrap();
        let mut rs = stmt.query([]).unwrap();
        while let Some(r) = rs.next().unwrap() {
            let id: i32 = r.get(0).unwrap();
            let d: Value = r.get(1).unwrap();
            let ts: Value = r.get(2).unwrap();
            let j: Result<String, _> = r.get(3);
            let u: Result<String, _> = r.get(4);
            let uu: Value = r.get(4).unwrap();
            let b: Result<Vec<u8>, _> = r.get(5);
            let l: Value = r.get(6).unwrap();
            let dtxt: Option<String> = r.get(7).unwrap();
            let tstxt: Option<String> = r.get(8).unwrap();
            let jtype: String = r.get(9).unwrap();
            let dd: Result<Decimal, _> = r.get(1);
            let tsi: Result<i64, _> = r.get(2);
            eprintln!(
                "PROBE row {id}: d={d:?} as Decimal={dd:?} d::VARCHAR={dtxt:?} | ts={ts:?} as i64={tsi:?} ts::VARCHAR={tstxt:?} | j={j:?} typeof={jtype} | u={u:?} as Value={uu:?} | b={b:?} | l={l:?}"
            );
        }
        if let Ok(ts) = conn.query_row("SELECT ts FROM ty WHERE id = 1", [], |r| {
            r.get::<_, Value>(0)
        }) {
            assert_eq!(
                ts,
                Value::Timestamp(TimeUnit::Microsecond, 1_700_000_000_123_456)
            );
        }
        let d: Decimal = conn
            .query_row("SELECT d FROM ty WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!((d.width(), d.scale(), d.value()), (38, 10, dec.value()));
        drop(stmt);
        drop(conn);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
