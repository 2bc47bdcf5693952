#!/bin/bash
# clone_repo.sh <url> <ref> <dest> [owner]
# Clone without credentials, check out the pinned ref (branch, tag or commit), print the commit.
# Already cloned at that ref: nothing changes. Uses the system CA store (git's default).
# A clone or fetch that fails on the way (a 5xx, a reset or dropped connection, a timeout) is
# tried again, 4 attempts with 2, 4, 8 s between them; an answer that will not change (no such
# repository or ref, a refused login, a host that does not resolve) is not.
set -euo pipefail

die() { echo "clone_repo: $*" >&2; exit 1; }
[ $# -ge 3 ] && [ $# -le 4 ] || die "usage: clone_repo.sh <url> <ref> <dest> [owner]"
url=$1 ref=$2 dest=$3 owner=${4:-}
[[ $url =~ ^(https|http|git|ssh)://|^file:// ]] || die "repository URL must be https://, http://, git://, ssh:// or file://"
[[ $ref != -* ]] || die "ref must not start with '-'"
[[ $dest == /* ]] || die "destination must be an absolute path"

# Never prompt for credentials, never use a credential helper: public repositories only.
export GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false
# safe.directory: root works in a clone owned by the admin user.
git_() { git -c credential.helper= -c core.askPass=/bin/false -c safe.directory='*' "$@"; }

resolve() { git_ -C "$dest" rev-parse --verify --quiet "$1^{commit}"; }

# The URL as it may be shown: without any user:password@ part.
shown_url=$(printf '%s' "$url" | sed -E 's#^([a-z]+://)[^/@]*@#\1#')
ATTEMPTS=4
# Failures git reports for a link or server trouble; anything else is taken as final.
TRANSIENT='returned error: 5[0-9][0-9]|HTTP 5[0-9][0-9]|Connection reset|reset by peer|early EOF|RPC failed|unexpected disconnect|remote end hung up|transfer closed|Empty reply|timed out|Failed to connect|Connection refused|Recv failure|SSL_read|GnuTLS recv error|TLS connection was non-properly terminated|curl 1[68]|curl 5[26]|curl 92'

# with_retry <what> <git args...>: run git, trying a transient failure again with backoff; its
# stderr goes on to ours. Exit status: git's last.
with_retry() {
    local what=$1 attempt=1 status errors
    shift
    errors=$(mktemp)
    while :; do
        status=0
        git_ "$@" 2>"$errors" || status=$?
        cat "$errors" >&2
        last_transient=0
        if [ "$status" -eq 0 ]; then break; fi
        grep -Eqi "$TRANSIENT" "$errors" && last_transient=1
        if [ "$attempt" -ge "$ATTEMPTS" ] || [ "$last_transient" -eq 0 ]; then break; fi
        echo "clone_repo: $what failed (attempt $attempt of $ATTEMPTS), retrying in $((2 ** attempt)) s" >&2
        sleep $((2 ** attempt))
        attempt=$((attempt + 1))
    done
    rm -f "$errors"
    tries=""
    [ "$attempt" -eq 1 ] || tries=" after $attempt attempts"
    return "$status"
}

if [ -d "$dest/.git" ]; then
    current=$(git_ -C "$dest" rev-parse HEAD)
    wanted=$(resolve "$ref" || resolve "origin/$ref" || true)
    if [ -n "$wanted" ] && [ "$wanted" = "$current" ]; then
        printf '{"commit": "%s", "ref": "%s", "changed": false}\n' "$current" "${ref//\"/}"
        exit 0
    fi
    with_retry "fetch from $shown_url" -C "$dest" fetch --tags --quiet origin \
        || die "fetch from $shown_url failed$tries"
elif [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
    die "$dest exists and is not an empty directory or a git clone"
else
    mkdir -p "$(dirname "$dest")"
    with_retry "clone of $shown_url" clone --quiet -- "$url" "$dest" \
        || die "git clone of $shown_url failed$tries (is the repository public and the URL right?)"
fi

# A branch name resolves through origin/<branch>; a tag or commit resolves as it is.
if commit=$(resolve "origin/$ref"); then :
elif commit=$(resolve "$ref"); then :
else
    if with_retry "fetch of '$ref' from $shown_url" -C "$dest" fetch --quiet origin "$ref" 2>/dev/null; then
        commit=$(resolve FETCH_HEAD)
    elif [ "$last_transient" -eq 1 ]; then
        die "fetch of '$ref' from $shown_url failed$tries"
    else
        die "ref '$ref' not found in $shown_url"
    fi
fi
git_ -C "$dest" -c advice.detachedHead=false checkout --quiet --detach "$commit" >&2
[ -z "$owner" ] || chown -R "$owner:" "$dest"
printf '{"commit": "%s", "ref": "%s", "changed": true}\n' "$commit" "${ref//\"/}"
