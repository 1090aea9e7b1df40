#!/usr/bin/env bash
# Fetch a reference Apache Kafka broker (KRaft) and its command-line tools from Maven Central
# into a cache outside the repository:
#   $DUCTSTREAM_KAFKA_HOME (default $HOME/.cache/ductstream/kafka-<version>)/libs/*.jar
# The Maven repository cache is $HOME/.cache/ductstream/m2 (shared with compat-tests/java).
# Idempotent: a stamp file records what was fetched, so a re-run returns at once.
# Prints the libs folder on stdout.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HOME}/.cache/ductstream"
M2="${DUCTSTREAM_M2:-$CACHE/m2}"
POM="$HERE/pom.xml"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
KHOME="${DUCTSTREAM_KAFKA_HOME:-$CACHE/kafka-$VERSION}"
LIBS="$KHOME/libs"
STAMP="$KHOME/.fetched"

log() { printf '[kafka-fetch] %s\n' "$*" >&2; }

if [ -f "$STAMP" ] && cmp -s "$POM" "$STAMP" && [ -f "$LIBS/kafka_2.13-$VERSION.jar" ]; then
    echo "$LIBS"
    exit 0
fi
command -v mvn >/dev/null 2>&1 || { log "mvn not found (Debian package maven)"; exit 1; }
log "fetching Apache Kafka $VERSION jars into $LIBS"
mkdir -p "$KHOME" "$M2"
rm -rf "$LIBS.tmp" "$KHOME/tools-cds.jsa"   # the class-data archive of the old jars, too
if ! mvn -B -q -f "$POM" -Dmaven.repo.local="$M2" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >"$KHOME/fetch.log" 2>&1; then
    log "mvn dependency:copy-dependencies failed:"
    tail -n 40 "$KHOME/fetch.log" >&2
    exit 1
fi
rm -rf "$LIBS"
mv "$LIBS.tmp" "$LIBS"
cp "$POM" "$STAMP"
log "fetched $(ls "$LIBS" | wc -l) jars"
echo "$LIBS"
