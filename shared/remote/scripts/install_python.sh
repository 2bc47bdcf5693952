#!/bin/bash
# install_python.sh <params.json>
# Python, Jupyter and the requested packages into <prefix>/env (default /opt/labimage/env: not a
# home directory, which deprovisioning deletes). Then every requested package must import.
# Writes report.json in the working directory and prints it as the last line.
#
# params.json: {"installer": "uv"|"miniforge"|"anaconda", "python_version": "3.11",
#   "packages": [...], "requirements": "text"|null, "environment_yml": "text"|null,
#   "prefix": "/opt/labimage", "installer_url": "https://..."|null, "owner": "azureuser"|null}
set -euo pipefail

die() { echo "install_python: $*" >&2; exit 1; }
[ $# -eq 1 ] && [ -r "$1" ] || die "usage: install_python.sh <params.json>"
params=$(readlink -f "$1")
work=$(pwd)
command -v python3 >/dev/null || die "python3 is not installed on this image"

# One value of the parameters file, read by python3 (never evaluated by the shell).
param() {
    python3 - "$params" "$1" <<'PY'
import json, sys
value = json.load(open(sys.argv[1])).get(sys.argv[2])
sys.stdout.write("" if value is None else str(value))
PY
}
installer=$(param installer); installer=${installer:-uv}
python_version=$(param python_version); python_version=${python_version:-3.11}
prefix=$(param prefix); prefix=${prefix:-/opt/labimage}
installer_url=$(param installer_url)
owner=$(param owner)
[[ $prefix =~ ^/[A-Za-z0-9._/-]+$ && $prefix != *..* ]] || die "prefix must be a plain absolute path"
[[ $python_version =~ ^[0-9]+(\.[0-9]+){0,2}$ ]] || die "python_version must look like 3.11"
mapfile -d '' packages < <(python3 - "$params" <<'PY'
import json, sys
for spec in json.load(open(sys.argv[1])).get("packages") or []:
    sys.stdout.write(str(spec) + "\0")
PY
)
for spec in "${packages[@]}"; do
    [[ $spec != -* ]] || die "package '$spec' looks like an option; refusing"
done
python3 - "$params" "$work" <<'PY'
import json, os, sys
params = json.load(open(sys.argv[1]))
for key, name in (("requirements", "requirements.txt"), ("environment_yml", "environment.yml"),
                  ("lock", "lock.txt")):
    path = os.path.join(sys.argv[2], name)
    if params.get(key):
        with open(path, "w") as f:
            f.write(params[key])
    elif os.path.exists(path):
        os.remove(path)
PY
env_dir=$prefix/env
base=(jupyterlab notebook nbclient nbformat ipykernel)
mkdir -p "$prefix"

# A fresh VM is still booting when SSH answers: cloud-init's last stages run on, and the
# first-boot package job (apt-daily, unattended-upgrades) holds dpkg's lock for a while.
APT_LOCK_TIMEOUT_S=600
wait_for_first_boot() {
    command -v cloud-init >/dev/null || return 0
    local rc=0
    timeout "$APT_LOCK_TIMEOUT_S" cloud-init status --wait >/dev/null 2>&1 || rc=$?
    # 2: done with recoverable errors (a module warned); anything else is worth a line
    [ "$rc" = 0 ] || [ "$rc" = 2 ] || echo "install_python: cloud-init status --wait said $rc; going on" >&2
}

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT_S" "$@" >&2
}

# Install Debian packages, waiting for the lock; a failed apt run is retried once (a mirror
# hiccup, lists that changed under it).
apt_install() {
    local try
    for try in 1 2; do
        if [ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$')" ] \
            && apt_get install -y --no-install-recommends "$@"; then
            return 0
        fi
        apt_get update && apt_get install -y --no-install-recommends "$@" && return 0
        [ "$try" = 2 ] || { echo "install_python: apt-get failed; retrying once" >&2; sleep 5; }
    done
    return 1
}

ensure_venv_module() {
    if python3 -c 'import ensurepip, venv' 2>/dev/null; then return; fi
    command -v apt-get >/dev/null || die "python3 has no venv/ensurepip and apt-get is missing"
    echo "install_python: python3 has no venv module (as on Ubuntu's cloud image): installing python3-venv" >&2
    wait_for_first_boot
    apt_install python3-venv || die "apt-get install python3-venv failed (twice)"
}

install_with_uv() {
    local bootstrap=$prefix/bootstrap
    if [ ! -x "$bootstrap/bin/uv" ]; then
        ensure_venv_module
        rm -rf "$bootstrap"
        python3 -m venv "$bootstrap" >&2 || die "python3 -m venv failed"
        # uv's own binary comes from its wheel on the Python package index: no other download.
        "$bootstrap/bin/pip" install --quiet --disable-pip-version-check uv >&2 \
            || die "pip install uv failed (is the package index reachable?)"
    fi
    local uv=$bootstrap/bin/uv
    # Python builds uv may download live under the prefix too; its cache is dropped at the end.
    export UV_PYTHON_INSTALL_DIR=$prefix/python UV_CACHE_DIR=/var/tmp/labimage-uv-cache
    # Trust the image's CA store, as pip and git do: networks with a TLS-inspecting proxy add
    # their CA there, and uv's built-in roots would refuse it. (UV_NATIVE_TLS: older uv.)
    export UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1
    export UV_NO_PROGRESS=1
    if [ -x "$env_dir/bin/python" ] && "$env_dir/bin/python" -c \
        "import sys; v = sys.argv[1].split('.'); sys.exit(list(map(str, sys.version_info[:len(v)])) != v)" \
        "$python_version"; then
        echo "install_python: $env_dir already has Python $python_version" >&2
    else
        rm -rf "$env_dir"
        "$uv" venv --seed --python "$python_version" "$env_dir" >&2 \
            || die "uv could not provide Python $python_version (no matching system Python and no download possible?)"
    fi
    if [ -f "$work/lock.txt" ]; then
        # An exact rebuild: the manifest's pins, no resolution (--no-deps), hashes when known.
        local hashes=()
        [ "$(param require_hashes)" = True ] && hashes=(--require-hashes)
        "$uv" pip install --python "$env_dir/bin/python" --no-deps "${hashes[@]}" \
            -r "$work/lock.txt" >&2 || die "uv pip install of the manifest's lock failed"
    else
        local req=()
        [ -f "$work/requirements.txt" ] && req=(-r "$work/requirements.txt")
        "$uv" pip install --python "$env_dir/bin/python" "${base[@]}" "${packages[@]}" "${req[@]}" >&2 \
            || die "uv pip install failed (see the lines above)"
    fi
    rm -rf "$UV_CACHE_DIR"
}

install_with_conda() {
    local conda_dir=$prefix/conda
    [ -n "$installer_url" ] || die "$installer needs installer_url"
    [[ $installer_url == https://* ]] || die "installer_url must be https"
    if [ ! -x "$conda_dir/bin/conda" ]; then
        local file=/opt/labimage-$installer-installer.sh
        curl -fsSL --retry 3 --proto '=https' -o "$file" -- "$installer_url" \
            || die "download of the $installer installer failed"
        bash "$file" -b -p "$conda_dir" >&2 || die "$installer installer failed"
        rm -f "$file"
    fi
    local conda=$conda_dir/bin/conda
    if [ -f "$work/environment.yml" ]; then
        if [ -d "$env_dir/conda-meta" ]; then
            "$conda" env update -p "$env_dir" -f "$work/environment.yml" --prune >&2 || die "conda env update failed"
        else
            "$conda" env create -p "$env_dir" -f "$work/environment.yml" >&2 || die "conda env create failed"
        fi
        "$conda" install -y -p "$env_dir" "${base[@]}" >&2 || die "conda install of Jupyter failed"
    else
        if [ ! -d "$env_dir/conda-meta" ]; then
            "$conda" create -y -p "$env_dir" "python=$python_version" >&2 || die "conda create failed"
        fi
        "$conda" install -y -p "$env_dir" "${base[@]}" "${packages[@]}" >&2 || die "conda install failed"
    fi
    if [ -f "$work/requirements.txt" ]; then
        "$env_dir/bin/python" -m pip install -r "$work/requirements.txt" >&2 || die "pip install -r failed"
    fi
    "$conda" clean -a -y >/dev/null 2>&1 || true
}

case $installer in
    uv) install_with_uv ;;
    miniforge|anaconda) install_with_conda ;;
    *) die "unknown installer '$installer' (uv, miniforge, anaconda)" ;;
esac
chmod -R a+rX "$prefix"
[ -z "$owner" ] || chown -R "$owner:" "$work" 2>/dev/null || true

# Every requested distribution must import: map it to its import names through the installed
# metadata (top_level.txt, packages_distributions), falling back to the name itself.
"$env_dir/bin/python" - "$params" "$work/report.json" "${base[@]}" <<'PY'
import importlib, importlib.metadata as md, json, re, sys

params_file, report_file, *base = sys.argv[1:]
params = json.load(open(params_file))
specs = list(base) + list(params.get("packages") or [])
if params.get("requirements"):
    specs += [l.split("#")[0].strip() for l in params["requirements"].splitlines()]
names = []
for spec in specs:
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if m and not spec.lstrip().startswith("-") and m.group(1) not in names:
        names.append(m.group(1))

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

by_dist = {}
for module, dists in md.packages_distributions().items():
    for dist in dists:
        by_dist.setdefault(norm(dist), []).append(module)

results, failed = [], []
for name in names:
    candidates = [m for m in by_dist.get(norm(name), []) if not m.startswith("_")]
    candidates = candidates or [name.replace("-", "_").lower(), name.replace("-", "_")]
    try:
        version = md.version(name)
    except md.PackageNotFoundError:
        version = None
    error = None
    for module in candidates:
        try:
            importlib.import_module(module)
            error = None
            imported = module
            break
        except Exception as exc:  # any import failure is a finding, not a crash
            error = f"{type(exc).__name__}: {exc}"
            imported = None
    ok = imported is not None
    results.append({"package": name, "version": version, "module": imported, "ok": ok,
                    "error": None if ok else error})
    if not ok:
        failed.append(name)

report = {"python": sys.executable, "python_version": sys.version.split()[0],
          "installer": params.get("installer") or "uv", "packages": results, "failed": failed}
with open(report_file, "w") as f:
    json.dump(report, f, indent=1)
print(json.dumps(report))
if failed:
    print("install_python: these packages do not import: " + ", ".join(failed), file=sys.stderr)
    sys.exit(1)
PY
