#!/bin/bash
# clone_repo.sh <url> <ref> <dest> [owner]
# Clone without credentials, check out the pinned ref (branch, tag or commit), print the commit.
# Already cloned at that ref: nothing changes. Uses the system CA store (git's default).
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

if [ -d "$dest/.git" ]; then
    current=$(git_ -C "$dest" rev-parse HEAD)
    wanted=$(resolve "$ref" || resolve "origin/$ref" || true)
    if [ -n "$wanted" ] && [ "$wanted" = "$current" ]; then
        printf '{"commit": "%s", "ref": "%s", "changed": false}\n' "$current" "${ref//\"/}"
        exit 0
    fi
    git_ -C "$dest" fetch --tags --quiet origin >&2 || die "fetch from the repository failed"
elif [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
    die "$dest exists and is not an empty directory or a git clone"
else
    mkdir -p "$(dirname "$dest")"
    git_ clone --quiet -- "$url" "$dest" >&2 || die "git clone failed (is the repository public and the URL right?)"
fi

# A branch name resolves through origin/<branch>; a tag or commit resolves as it is.
if commit=$(resolve "origin/$ref"); then :
elif commit=$(resolve "$ref"); then :
else
    git_ -C "$dest" fetch --quiet origin "$ref" >&2 2>/dev/null && commit=$(resolve FETCH_HEAD) \
        || die "ref '$ref' not found in the repository"
fi
git_ -C "$dest" -c advice.detachedHead=false checkout --quiet --detach "$commit" >&2
[ -z "$owner" ] || chown -R "$owner:" "$dest"
printf '{"commit": "%s", "ref": "%s", "changed": true}\n' "$commit" "${ref//\"/}"
