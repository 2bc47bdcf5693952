#!/bin/bash
# The install overlap side by side: two instances at once (jobs at once / one at a time), guests'
# Blob reads held 2 s per request (bench/slow-blob-link.json). Ports 21400+/28471+/29843+.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MB=${MB:-768}
ports() { local o=$1; echo "--blob-port $((21400+o)) --queue-port $((21401+o)) --table-port $((21402+o)) --arm-port $((29843+o)) --identity-port $((29844+o)) --git-port $((29845+o)) --vault-port $((29846+o)) --functions-port $((28471+o))"; }
A=/tmp/b13b-par; B=/tmp/b13b-seq
rm -rf $A $B; mkdir -p $A $B
trap '$PY -m localcloud down --state-dir $A >/dev/null 2>&1; $PY -m localcloud down --state-dir $B >/dev/null 2>&1' EXIT
date
$PY -m localcloud up --state-dir $A $(ports 0) --faults bench/slow-blob-link.json --setting LABIMAGE_SPANS_FILE=$A/spans.jsonl > $A/up.log 2>&1 || { echo up A failed; tail $A/up.log; exit 1; }
$PY -m localcloud up --state-dir $B $(ports 20) --faults bench/slow-blob-link.json --setting LABIMAGE_SPANS_FILE=$B/spans.jsonl --setting LABIMAGE_INSTALL_PARALLEL=1 > $B/up.log 2>&1 || { echo up B failed; tail $B/up.log; exit 1; }
$PY bench/critical_path.py --state-dir $A --spans $A/spans.jsonl --prepare $MB
$PY bench/critical_path.py --state-dir $B --spans $B/spans.jsonl --prepare $MB
date
$PY bench/critical_path.py --state-dir $A --spans $A/spans.jsonl --json $A/overlap-fig.json --submit $A/overlap.json > $A/fig.txt 2>&1 &
$PY bench/critical_path.py --state-dir $B --spans $B/spans.jsonl --json $B/overlap-fig.json --submit $B/overlap.json > $B/fig.txt 2>&1 &
wait
cat $A/fig.txt $B/fig.txt
date
