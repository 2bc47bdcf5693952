#!/bin/bash
# The data-only rebuild (weekly-1 then weekly-2 on one instance), and the overlap request on
# two instances one after the other (bench/critical_path.md, fourth session). Ports 21400+/28471+/29843+.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MB=${MB:-768}
ports() { local o=$1; echo "--blob-port $((21400+o)) --queue-port $((21401+o)) --table-port $((21402+o)) --arm-port $((29843+o)) --identity-port $((29844+o)) --git-port $((29845+o)) --vault-port $((29846+o)) --functions-port $((28471+o))"; }
A=/tmp/b13-par; B=/tmp/b13-seq
rm -rf $A $B; mkdir -p $A $B
trap '$PY -m localcloud down --state-dir $A >/dev/null 2>&1; $PY -m localcloud down --state-dir $B >/dev/null 2>&1' EXIT
date
$PY -m localcloud up --state-dir $A $(ports 0) --setting LABIMAGE_SPANS_FILE=$A/spans.jsonl > $A/up.log 2>&1 || { echo up A failed; tail $A/up.log; exit 1; }
$PY bench/critical_path.py --state-dir $A --spans $A/spans.jsonl --prepare $MB
$PY bench/critical_path.py --state-dir $A --spans $A/spans.jsonl --json $A/overlap.json --submit $A/overlap.json
$PY bench/critical_path.py --state-dir $A --spans $A/spans.jsonl --json $A/weekly.json --submit $A/weekly-1.json --submit $A/weekly-2.json
$PY -m localcloud down --state-dir $A >/dev/null 2>&1
date
$PY -m localcloud up --state-dir $B $(ports 20) --setting LABIMAGE_SPANS_FILE=$B/spans.jsonl --setting LABIMAGE_INSTALL_PARALLEL=1 > $B/up.log 2>&1 || { echo up B failed; tail $B/up.log; exit 1; }
$PY bench/critical_path.py --state-dir $B --spans $B/spans.jsonl --prepare $MB
$PY bench/critical_path.py --state-dir $B --spans $B/spans.jsonl --json $B/overlap.json --submit $B/overlap.json
date
