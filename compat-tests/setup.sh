#!/usr/bin/env bash
# Idempotent installer for everything the DuctStream real-client compatibility
# tests need (Debian 12, run as root or with passwordless sudo).
#
#   - Debian packages: kcat, librdkafka-dev, golang-go (1.19), sarama (1.22.1),
#     postgresql (server binaries for throwaway clusters), openssl (their TLS certificates),
#     clickhouse-server (18.16, for throwaway ClickHouse servers; its system service is kept off)
#   - a Python venv with the pinned clients from requirements.txt
#   - kafkajs in compat-tests/node (npm ci from package-lock.json)
#   - DuckDB's prebuilt libduckdb.so (npm @duckdb/node-bindings-linux-x64) for sinks' `duckdb` feature
#   - the sarama driver program, built into a cache folder (not into the repo)
#   - franz-go's pkg/kgo integration tests (pinned in franz-go/go.mod), built with Go >= 1.26
#   - the current IBM/sarama driver (pinned in sarama-modern/go.mod), built the same way
#   - Java 17 and Maven (if missing); the reference Apache Kafka's jars (kafka/fetch.sh) and the
#     Java client tests' dependencies (java/pom.xml), in the Maven cache $DUCTSTREAM_M2
#
# Re-runs skip every step that is already done, so they take a second or two.
#
# Environment:
#   DUCTSTREAM_VENV        venv location   (default $HOME/.cache/ductstream/venv)
#   DUCTSTREAM_COMPAT_BIN  build-output dir (default $HOME/.cache/ductstream/compat-bin)
#   PYTHON                 interpreter used to create the venv (default python3)
#   DUCTSTREAM_M2          Maven repository cache (default $HOME/.cache/ductstream/m2)
#   DUCTSTREAM_DUCKDB_DIR  folder of libduckdb.so (default $HOME/.cache/ductstream/duckdb)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HOME}/.cache/ductstream"
VENV="${DUCTSTREAM_VENV:-$CACHE/venv}"
BIN_DIR="${DUCTSTREAM_COMPAT_BIN:-$CACHE/compat-bin}"
PYTHON="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[compat-setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
fi

# ---------------------------------------------------------------- apt packages
APT_PKGS=(kcat librdkafka-dev libssl-dev pkg-config golang-go golang-github-shopify-sarama-dev python3-venv ca-certificates postgresql openssl jq clickhouse-server chromium)
missing=()
for p in "${APT_PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi
if ! command -v javac >/dev/null 2>&1; then
    missing+=(openjdk-17-jdk-headless)
fi
if ! command -v mvn >/dev/null 2>&1; then
    missing+=(maven)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "Debian packages already installed"
fi

# Debian's clickhouse-server enables a system service on the default ports (8123, 9000, 9009) and
# starts it where the machine allows; the tests run their own servers (clickhouse_support.py), so
# keep it disabled and stopped. Only the service's processes (user clickhouse) are stopped.
if [ -x /etc/init.d/clickhouse-server ]; then
    if [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now clickhouse-server >/dev/null 2>&1 || true
    fi
    $SUDO update-rc.d clickhouse-server disable >/dev/null 2>&1 || true
    $SUDO start-stop-daemon --stop --quiet --oknodo --retry=TERM/30/KILL/5 \
        --user clickhouse --exec /usr/sbin/clickhouse-server
fi

# ------------------------------------------------------------------ python venv
REQ="$HERE/requirements.txt"
STAMP="$VENV/.ductstream-requirements"
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || ! cmp -s "$REQ" "$STAMP"; then
    log "installing Python requirements into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ"
    cp "$REQ" "$STAMP"
else
    log "Python requirements already installed"
fi

# ---------------------------------------------------------------------- kafkajs
NODE_DIR="$HERE/node"
if [ ! -f "$NODE_DIR/node_modules/kafkajs/package.json" ] \
    || [ "$NODE_DIR/package-lock.json" -nt "$NODE_DIR/node_modules/.package-lock.json" ]; then
    log "installing kafkajs (npm ci)"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
else
    log "kafkajs already installed"
fi

# ------------------------------------------------------------ prebuilt libduckdb.so
# DuckDB's C library for ductstream-sinks' `duckdb` feature (duckdb crate =1.10506.1 = DuckDB 1.5.6),
# from the npm package that ships it prebuilt (the crate's `bundled` build takes ~40 minutes).
# Leaves $DUCTSTREAM_DUCKDB_DIR/libduckdb.so (default $HOME/.cache/ductstream/duckdb), where
# sinks/build.rs links it and points the rpath. Keep the version in step with sinks/Cargo.toml.
DUCKDB_NPM_VERSION="1.5.6-r.1"
DUCKDB_DIR="${DUCTSTREAM_DUCKDB_DIR:-$CACHE/duckdb}"
if [ -s "$DUCKDB_DIR/libduckdb.so" ] && [ "$(cat "$DUCKDB_DIR/VERSION" 2>/dev/null)" = "$DUCKDB_NPM_VERSION" ]; then
    log "libduckdb.so $DUCKDB_NPM_VERSION already installed"
else
    log "installing libduckdb.so from @duckdb/node-bindings-linux-x64@$DUCKDB_NPM_VERSION"
    mkdir -p "$DUCKDB_DIR"
    rm -rf "$DUCKDB_DIR"/.npm.*
    tmp="$(mktemp -d "$DUCKDB_DIR/.npm.XXXXXX")"
    (cd "$tmp" && npm pack --silent --loglevel=error "@duckdb/node-bindings-linux-x64@$DUCKDB_NPM_VERSION" >/dev/null)
    tar -xzf "$tmp"/duckdb-node-bindings-linux-x64-*.tgz -C "$tmp" package/libduckdb.so
    touch "$tmp/package/libduckdb.so"  # npm dates it 1985; sinks/build.rs watches it
    # a rename, not an overwrite: a running process keeps its mapping of the old file
    mv -f "$tmp/package/libduckdb.so" "$DUCKDB_DIR/libduckdb.so"
    echo "$DUCKDB_NPM_VERSION" > "$DUCKDB_DIR/VERSION"
    rm -rf "$tmp"
fi

# ----------------------------------------------------------------- sarama driver
mkdir -p "$BIN_DIR"
SARAMA_SRC="$HERE/sarama/main.go"
SARAMA_BIN="$BIN_DIR/sarama-compat"
if [ ! -x "$SARAMA_BIN" ] || [ "$SARAMA_SRC" -nt "$SARAMA_BIN" ]; then
    log "building sarama driver -> $SARAMA_BIN"
    # GOPATH mode against Debian's packaged sarama (no module proxy needed).
    (cd "$HERE/sarama" && GO111MODULE=off GOPATH=/usr/share/gocode \
        GOCACHE="$CACHE/go-build" GOFLAGS= CGO_CFLAGS="-O2 -Wno-deprecated-declarations" go build -o "$SARAMA_BIN.tmp" main.go)
    mv "$SARAMA_BIN.tmp" "$SARAMA_BIN"
else
    log "sarama driver up to date"
fi

# The consumer-group driver (test_groups_sarama.py) is a second program.
SARAMA_GROUP_SRC="$HERE/sarama/group/main.go"
SARAMA_GROUP_BIN="$BIN_DIR/sarama-group-compat"
if [ ! -x "$SARAMA_GROUP_BIN" ] || [ "$SARAMA_GROUP_SRC" -nt "$SARAMA_GROUP_BIN" ]; then
    log "building sarama group driver -> $SARAMA_GROUP_BIN"
    (cd "$HERE/sarama/group" && GO111MODULE=off GOPATH=/usr/share/gocode \
        GOCACHE="$CACHE/go-build" GOFLAGS= CGO_CFLAGS="-O2 -Wno-deprecated-declarations" go build -o "$SARAMA_GROUP_BIN.tmp" main.go)
    mv "$SARAMA_GROUP_BIN.tmp" "$SARAMA_GROUP_BIN"
else
    log "sarama group driver up to date"
fi

# franz-go's own integration suite (pkg/kgo of the version franz-go/go.mod pins), built into
# a test binary; the Go module cache lives under the cache folder. It needs Go >= 1.26: the
# machine's /usr/local/go when there is one (Debian's golang-go is older).
GO_NEW="go"
if [ -x /usr/local/go/bin/go ]; then GO_NEW=/usr/local/go/bin/go; fi
KGO_TEST_BIN="$BIN_DIR/franz-go-kgo.test"
if [ ! -x "$KGO_TEST_BIN" ] || [ "$HERE/franz-go/go.sum" -nt "$KGO_TEST_BIN" ] \
    || [ "$HERE/franz-go/go.mod" -nt "$KGO_TEST_BIN" ]; then
    log "building franz-go's kgo test binary -> $KGO_TEST_BIN"
    (cd "$HERE/franz-go" && GOMODCACHE="$CACHE/go-mod" GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod \
        "$GO_NEW" test -c -o "$KGO_TEST_BIN.tmp" github.com/twmb/franz-go/pkg/kgo \
        && GOMODCACHE="$CACHE/go-mod" GOFLAGS=-mod=mod "$GO_NEW" list -m -f '{{.Dir}}' \
            github.com/twmb/franz-go > "$KGO_TEST_BIN.dir")
    mv "$KGO_TEST_BIN.tmp" "$KGO_TEST_BIN"
else
    log "franz-go kgo test binary up to date"
fi

# Current IBM/sarama (pinned in sarama-modern/go.mod) from the Go module proxy, built with the
# same Go and caches as franz-go's suite, beside Debian's sarama 1.22 driver.
SARAMA_MODERN_BIN="$BIN_DIR/sarama-modern-compat"
if [ ! -x "$SARAMA_MODERN_BIN" ] || [ "$HERE/sarama-modern/main.go" -nt "$SARAMA_MODERN_BIN" ] \
    || [ "$HERE/sarama-modern/go.sum" -nt "$SARAMA_MODERN_BIN" ]; then
    log "building the current sarama driver -> $SARAMA_MODERN_BIN"
    (cd "$HERE/sarama-modern" && GOMODCACHE="$CACHE/go-mod" GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod \
        "$GO_NEW" build -o "$SARAMA_MODERN_BIN.tmp" .)
    mv "$SARAMA_MODERN_BIN.tmp" "$SARAMA_MODERN_BIN"
else
    log "current sarama driver up to date"
fi

# The TLS and SASL drivers (test_security.py): sarama with xdg-go/scram, franz-go with its own
# SASL packages; in the same modules as the drivers above.
for driver in "sarama-modern:sarama-secure-compat" "franz-go:franz-go-secure-compat"; do
    module="${driver%%:*}"
    bin="$BIN_DIR/${driver##*:}"
    if [ ! -x "$bin" ] || [ "$HERE/$module/secure/main.go" -nt "$bin" ] || [ "$HERE/$module/go.sum" -nt "$bin" ]; then
        log "building $module's TLS and SASL driver -> $bin"
        (cd "$HERE/$module" && GOMODCACHE="$CACHE/go-mod" GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod \
            "$GO_NEW" build -o "$bin.tmp" ./secure)
        mv "$bin.tmp" "$bin"
    else
        log "$module's TLS and SASL driver up to date"
    fi
done

# grpcurl, from the Go module proxy (pinned), for the gRPC API tests.
GRPCURL_VERSION=v1.9.3
GRPCURL_BIN="$BIN_DIR/grpcurl"
if [ ! -x "$GRPCURL_BIN" ] || [ "$(cat "$GRPCURL_BIN.version" 2>/dev/null)" != "$GRPCURL_VERSION" ]; then
    log "installing grpcurl $GRPCURL_VERSION -> $GRPCURL_BIN"
    GOBIN="$BIN_DIR" GOMODCACHE="$CACHE/go-mod" GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod \
        "$GO_NEW" install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
    echo "$GRPCURL_VERSION" > "$GRPCURL_BIN.version"
else
    log "grpcurl up to date"
fi

# The Go stream consumer of examples/go (its own module), run by test_examples.py.
GO_CONSUMER_SRC="$HERE/../examples/go"
GO_CONSUMER_BIN="$BIN_DIR/stream-consumer-go"
if [ ! -x "$GO_CONSUMER_BIN" ] || [ -n "$(find "$GO_CONSUMER_SRC" -newer "$GO_CONSUMER_BIN" -type f 2>/dev/null | head -n 1)" ]; then
    log "building the Go stream consumer example -> $GO_CONSUMER_BIN"
    (cd "$GO_CONSUMER_SRC" && GOMODCACHE="$CACHE/go-mod" GOCACHE="$CACHE/go-build" GOFLAGS=-mod=mod \
        "$GO_NEW" build -o "$GO_CONSUMER_BIN" ./stream_consumer)
else
    log "Go stream consumer example up to date"
fi

# ------------------------------------------- reference Kafka and the Java client tests
M2="${DUCTSTREAM_M2:-$CACHE/m2}"
KAFKA_LIBS="$(bash "$HERE/kafka/fetch.sh")"
JAVA_POM="$HERE/java/pom.xml"
JAVA_STAMP="$M2/.ductstream-java-pom"
if [ ! -f "$JAVA_STAMP" ] || ! cmp -s "$JAVA_POM" "$JAVA_STAMP"; then
    log "resolving the Java client tests' dependencies and Maven plugins into $M2"
    # compile and run the one test that needs no broker: this resolves Surefire's JUnit
    # provider too, so that the suite can run Maven offline (-o)
    (cd "$HERE/java" && mvn -B -q -Dmaven.repo.local="$M2" test -Dtest=ClientVersionTest \
        -Dds.reports="$M2/.ductstream-setup-reports")
    cp "$JAVA_POM" "$JAVA_STAMP"
else
    log "Java client test dependencies already resolved"
fi

log "ready (kafka=$KAFKA_LIBS, venv=$VENV, sarama=$SARAMA_BIN, sarama group=$SARAMA_GROUP_BIN)"
