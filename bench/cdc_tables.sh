#!/usr/bin/env bash
# CDC into table destinations: a fresh Postgres 15 (fsync on, wal_level=logical,
# shared_buffers=512MB) holds the source database and, for the postgres destination, the
# destination database; a fresh DuctStream (release, embedded store) runs the flow.
# `ductstream-bench cdc` writes CHANGES changes (70/20/10 inserts/updates/deletes of 1 KiB rows,
# 4 writers) at each RATE (0: as fast as the writers go) and reports changes/s into the topic
# and into the destination, commit-to-destination latency, and pg_recvlogical's decode rate
# over the same changes as the limit.
#
#   bench/cdc_tables.sh [DESTINATION=postgres|duckdb|clickhouse|none] [CHANGES=300000] [RATES="50000 0"]
#
# `none` runs the flow into its topic only. BACKLOG=1 pauses the flow while the writers run and
# times how fast it streams the backlog (its ceiling, beside pg_recvlogical on the same
# backlog). PERF=1 records the broker with `perf record -g` (into ./perf-cdc.data).
# DEST_OPTIONS="key=value ..." adds destination options.
#
# Release binaries in $CARGO_TARGET_DIR/release (the duckdb destination needs the broker built
# with --features duckdb; clickhouse needs Debian's clickhouse-server).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DESTINATION="${1:-postgres}"
CHANGES="${2:-300000}"
RATES="${3:-50000 0}"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/ductstream/target}/release"
PG_BIN="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")"
WORK="$(mktemp -d)"
chmod 755 "$WORK"
cleanup() {
    [[ -n "${DS_PID:-}" ]] && kill "$DS_PID" 2>/dev/null || true
    [[ -n "${CH_PID:-}" ]] && kill "$CH_PID" 2>/dev/null || true
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
    if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PG_PORT="$(free_port)"
mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg" -A trust -U postgres -E UTF8 --locale=C >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w -o \
    "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c wal_level=logical -c shared_buffers=512MB -c max_wal_size=4GB" start >/dev/null
PG="postgres://postgres@127.0.0.1:$PG_PORT"
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres source
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres dest

case "$DESTINATION" in
    postgres) OPTIONS=(--destination-option "dsn=$PG/dest") ;;
    duckdb) OPTIONS=(--destination-option "dsn=$WORK/warehouse.duckdb") ;;
    clickhouse)
        CH_PORT="$(free_port)"
        mkdir -p "$WORK/ch"
        cat >"$WORK/ch/config.xml" <<XML
<yandex><path>$WORK/ch/</path><tmp_path>$WORK/ch/tmp/</tmp_path><listen_host>127.0.0.1</listen_host>
<http_port>$CH_PORT</http_port><tcp_port>$(free_port)</tcp_port><timezone>UTC</timezone>
<logger><level>warning</level><log>$WORK/ch/server.log</log><errorlog>$WORK/ch/error.log</errorlog></logger>
<users_config>$WORK/ch/users.xml</users_config><mark_cache_size>5368709120</mark_cache_size></yandex>
XML
        cat >"$WORK/ch/users.xml" <<XML
<yandex><profiles><default/></profiles><quotas><default/></quotas>
<users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default></users></yandex>
XML
        clickhouse-server --config-file="$WORK/ch/config.xml" >"$WORK/ch/out" 2>&1 &
        CH_PID=$!
        for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$CH_PORT/ping" >/dev/null && break; sleep 0.05; done
        OPTIONS=(--destination-option "dsn=http://127.0.0.1:$CH_PORT")
        ;;
    none) OPTIONS=() ;;
    *) echo "destination: postgres, duckdb, clickhouse or none" >&2; exit 2 ;;
esac

"$BIN/ductstream" --kafka-listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 --data-dir "$WORK/ds" >"$WORK/ds.out" 2>"$WORK/ds.err" &
DS_PID=$!
for _ in $(seq 1 500); do grep -q "listening kafka=" "$WORK/ds.out" 2>/dev/null && break; sleep 0.02; done
DS_BS="$(sed -n "s/.*listening kafka=\([0-9.:]*\).*/\1/p" "$WORK/ds.out" | head -n 1)"
DS_GRPC="$(sed -n 's/.*grpc=\([0-9.:]*\).*/\1/p' "$WORK/ds.out" "$WORK/ds.err" | head -n 1)"
if [[ "${PERF:-0}" == 1 ]]; then
    perf record --call-graph dwarf,32768 -F 250 -p "$DS_PID" -o perf-cdc.data >/dev/null 2>&1 &
    PERF_PID=$!
fi
for rate in $RATES; do
    echo "== $DESTINATION, writers' rate ${rate:-0} (0: unlimited)"
    DEST_ARGS=()
    [[ "$DESTINATION" != none ]] && DEST_ARGS=(--destination "$DESTINATION" "${OPTIONS[@]}")
    for option in ${DEST_OPTIONS:-}; do DEST_ARGS+=(--destination-option "$option"); done
    [[ "${BACKLOG:-0}" == 1 ]] && DEST_ARGS+=(--backlog)
    "$BIN/ductstream-bench" cdc --bootstrap "$DS_BS" --grpc "http://$DS_GRPC" --dsn "$PG/source" \
        --changes "$CHANGES" --rate "$rate" --broker-pid "$DS_PID" "${DEST_ARGS[@]}"
done
if [[ -n "${PERF_PID:-}" ]]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
if [[ "$DESTINATION" == postgres ]]; then
    # The reference: Postgres' own COPY of as many 1 KiB rows into a keyed table of the same
    # database, on the same machine.
    "$PG_BIN/psql" -q "$PG/dest" -c "CREATE TABLE copy_reference (id bigint PRIMARY KEY, payload text NOT NULL)"
    started="$(date +%s%N)"
    python3 -c "import sys; p = 'x' * 1024
for i in range($CHANGES): sys.stdout.write(f'{i}\t{p}\n')" | "$PG_BIN/psql" -q "$PG/dest" -c "\copy copy_reference FROM STDIN"
    ms=$(( ($(date +%s%N) - started) / 1000000 ))
    echo "reference: Postgres COPY of $CHANGES rows of 1 KiB into a keyed table: $ms ms, $(( CHANGES * 1000 / (ms > 0 ? ms : 1) )) rows/s"
fi
