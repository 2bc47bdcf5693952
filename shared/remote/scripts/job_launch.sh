#!/bin/bash
# Start a detached job once: job_launch.sh <jobs_root> <job_name> <staging_dir> <timeout_s> <cmd...>
#
# The job directory is created with an atomic mkdir: a second start (a duplicate queue message,
# a retry after a lost connection) finds it and does nothing. The job runs in its own session
# under `timeout -k`, writes `log`, and finally `status` (its exit code) through a rename, so a
# poller never reads half a status. Runs as root.
set -euo pipefail

jobs_root=$1 job_name=$2 staging=$3 limit=$4
shift 4
job_dir="$jobs_root/$job_name"

mkdir -p -m 0755 "$jobs_root"
if ! mkdir -m 0700 "$job_dir" 2>/dev/null; then
    rm -rf -- "$staging"
    echo "already-started"
    exit 0
fi
find "$staging" -mindepth 1 -maxdepth 1 -exec mv -t "$job_dir" -- {} +
rmdir -- "$staging"
chown -R root:root "$job_dir"
chmod 0700 "$job_dir/run"
cd "$job_dir"

# The supervisor: load env lines literally (export "$line" never evaluates the value), run the
# command under timeout, record its own pid (for poll: a job whose supervisor is gone without a
# status was lost, e.g. by a reboot) and timeout's (for stop_job), then publish the exit status.
# shellcheck disable=SC2016
setsid nohup /bin/bash -c '
    limit=$1; shift
    echo "$$" > supervisor.tmp && mv -f supervisor.tmp supervisor
    if [ -f env ]; then
        while IFS= read -r line; do export "$line"; done < env
    fi
    timeout -k 10 "$limit" "$@" > log 2>&1 < /dev/null &
    echo "$!" > pid.tmp && mv -f pid.tmp pid
    wait "$!"
    echo "$?" > status.tmp && mv -f status.tmp status
' labimage-job "$limit" "$@" < /dev/null > /dev/null 2>&1 &
echo "started"
