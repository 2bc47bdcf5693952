# The README's commands. Each target installs what it needs first, so a fresh clone works.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SYSTEM_PACKAGES := openssh-server sudo xfsprogs parted nftables python3-venv git curl ca-certificates iproute2 util-linux mmdebstrap
SYSTEM_COMMANDS := /usr/sbin/sshd /usr/bin/sudo /sbin/mkfs.xfs /sbin/parted /usr/sbin/nft /usr/bin/git /usr/bin/curl /usr/bin/mmdebstrap

.PHONY: setup system-packages demo test test-fast lint up down status clean

setup: system-packages $(VENV)/.installed localcloud/node_modules/.installed

system-packages:
	@missing=0; for c in $(SYSTEM_COMMANDS); do [ -x $$c ] || missing=1; done; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing=1; \
	/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing=1; \
	if [ $$missing = 1 ]; then \
	  echo "installing Debian packages: $(SYSTEM_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -e . --no-deps
	@touch $@

localcloud/node_modules/.installed: localcloud/package.json localcloud/package-lock.json
	cd localcloud && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(PY) -m localcloud.demo

test: setup
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; $(PY) -m localcloud down --all >/dev/null 2>&1; exit $$rc

test-fast: setup
	$(PY) -m pytest -p no:cacheprovider -m "not e2e" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy function_app.py functions shared localcloud labimage_cli

up: setup
	$(PY) -m localcloud up --auth-settings infra/authsettings.json

down:
	@if [ -x $(PY) ]; then $(PY) -m localcloud down; fi

status:
	$(PY) -m localcloud status
