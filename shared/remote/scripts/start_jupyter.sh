#!/bin/bash
# start_jupyter.sh <env_dir> <port> <token_file> [root_dir]
# Serve Jupyter on 127.0.0.1:<port> only (reached through an SSH port forward). The token comes
# from a 0600 file into the environment, never onto the command line. Run as a detached job.
set -euo pipefail

die() { echo "start_jupyter: $*" >&2; exit 1; }
[ $# -ge 3 ] || die "usage: start_jupyter.sh <env_dir> <port> <token_file> [root_dir]"
env_dir=$1 port=$2 token_file=$3 root_dir=${4:-/}
[[ $port =~ ^[0-9]{2,5}$ ]] || die "port must be a number"
[ -x "$env_dir/bin/jupyter" ] || die "no jupyter in $env_dir"
JUPYTER_TOKEN=$(cat "$token_file")
export JUPYTER_TOKEN
rm -f "$token_file"
export HOME=${HOME:-/root}
app=server
"$env_dir/bin/jupyter" server --version >/dev/null 2>&1 || app=lab
exec "$env_dir/bin/jupyter" "$app" --ServerApp.ip=127.0.0.1 --ServerApp.port="$port" \
    --ServerApp.port_retries=0 --ServerApp.open_browser=False --allow-root \
    --ServerApp.root_dir="$root_dir"
