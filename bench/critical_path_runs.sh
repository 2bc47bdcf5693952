#!/bin/bash
# The issue 13 figures of bench/critical_path.md (fourth session), on instances of their own
# (state in /tmp/b13-*, ports 21400+/28471+/29843+ and the same +20), taken down at the end.
#   bench/critical_path_runs.sh rebuild   weekly-1 then weekly-2 (only the data changed) on one
#                                         instance; then overlap.json with jobs at once there and
#                                         one at a time on a second instance, one after the other
#   bench/critical_path_runs.sh overlap   overlap.json on both instances at the same moment,
#                                         guests' Blob reads held 2 s (bench/slow-blob-link.json)
# MB (default 768) is the size of each of the overlap request's two data sources.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MB=${MB:-768}
MODE=${1:?usage: critical_path_runs.sh rebuild|overlap}
ports() { local o=$1; echo "--blob-port $((21400+o)) --queue-port $((21401+o)) --table-port $((21402+o)) --arm-port $((29843+o)) --identity-port $((29844+o)) --git-port $((29845+o)) --vault-port $((29846+o)) --functions-port $((28471+o))"; }
A=/tmp/b13-$MODE-par; B=/tmp/b13-$MODE-seq
rm -rf "$A" "$B"; mkdir -p "$A" "$B"
trap '$PY -m localcloud down --state-dir $A >/dev/null 2>&1; $PY -m localcloud down --state-dir $B >/dev/null 2>&1' EXIT
faults=(); [ "$MODE" = overlap ] && faults=(--faults bench/slow-blob-link.json)
up() {  # up DIR OFFSET [--setting ...]
    local dir=$1 offset=$2; shift 2
    $PY -m localcloud up --state-dir "$dir" $(ports "$offset") "${faults[@]}" \
        --setting "LABIMAGE_SPANS_FILE=$dir/spans.jsonl" "$@" > "$dir/up.log" 2>&1 \
        || { echo "up $dir failed"; tail "$dir/up.log"; exit 1; }
    $PY bench/critical_path.py --state-dir "$dir" --spans "$dir/spans.jsonl" --prepare "$MB"
}
figures() {  # figures DIR REQUEST...
    local dir=$1; shift
    local submits=(); for r in "$@"; do submits+=(--submit "$dir/$r.json"); done
    $PY bench/critical_path.py --state-dir "$dir" --spans "$dir/spans.jsonl" "${submits[@]}"
}
date
if [ "$MODE" = rebuild ]; then
    up "$A" 0
    figures "$A" overlap
    figures "$A" weekly-1 weekly-2
    $PY -m localcloud down --state-dir "$A" >/dev/null 2>&1
    up "$B" 20 --setting LABIMAGE_INSTALL_PARALLEL=1
    figures "$B" overlap
else
    up "$A" 0
    up "$B" 20 --setting LABIMAGE_INSTALL_PARALLEL=1
    figures "$A" overlap > "$A/fig.txt" 2>&1 &
    figures "$B" overlap > "$B/fig.txt" 2>&1 &
    wait
    cat "$A/fig.txt" "$B/fig.txt"
fi
date
