#!/usr/bin/env bash
# A durable consumer in bash: pulls from a stream's consumer group with ductstream-admin, prints
# each message as "<id> <value>", and acks what it printed. The first pull creates the group.
#
#   examples/stream_consumer.sh -endpoint localhost:8080 -stream orders -group search \
#       [-max 10] [-visibility 30] [-idle-exit N]
#
# -idle-exit N stops after N pulls in a row that found nothing (each waits up to a second);
# without it the loop runs until interrupted. Needs jq; $DUCTSTREAM_ADMIN names the CLI.
set -euo pipefail
endpoint=localhost:8080 stream= group= max=10 visibility=30 idle_exit=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        -endpoint|--endpoint) endpoint="$2"; shift 2 ;;
        -stream|--stream) stream="$2"; shift 2 ;;
        -group|--group) group="$2"; shift 2 ;;
        -max|--max) max="$2"; shift 2 ;;
        -visibility|--visibility) visibility="$2"; shift 2 ;;
        -idle-exit|--idle-exit) idle_exit="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
if [[ -z "$stream" || -z "$group" ]]; then
    echo "usage: $0 -endpoint HOST:PORT -stream NAME -group NAME [-max N] [-visibility S] [-idle-exit N]" >&2
    exit 2
fi
[[ "$endpoint" == http://* || "$endpoint" == https://* ]] || endpoint="http://$endpoint"
admin() { "${DUCTSTREAM_ADMIN:-ductstream-admin}" --server "$endpoint" "$@"; }

idle=0
while :; do
    batch="$(admin --json stream pull --stream "$stream" --group "$group" --max "$max" --visibility "$visibility" --wait 1s)"
    if [[ "$(jq 'length' <<<"$batch")" == 0 ]]; then
        idle=$((idle + 1))
        if [[ "$idle_exit" -gt 0 && "$idle" -ge "$idle_exit" ]]; then
            exit 0
        fi
        continue
    fi
    idle=0
    jq -r '.[] | "\(.id) \(.value)"' <<<"$batch"
    admin stream ack --stream "$stream" --group "$group" --ids "$(jq -r 'map(.id) | join(",")' <<<"$batch")" >/dev/null
done
