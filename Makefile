# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo demo-cli browser deploy-tools kerberos-tools kerberos-extra test lint format clean

# The kerberos extra (pyspnego's Kerberos support: the gssapi and krb5
# packages) compiles against MIT Kerberos' headers, so it is installed when
# `krb5-config` (Debian's libkrb5-dev) is there; `make kerberos-tools` brings it.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "checkpoint-bot needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@if command -v krb5-config >/dev/null; then \
	  echo "$(BIN)/pip install --quiet -e '.[dev,demo,kerberos]'"; \
	  $(BIN)/pip install --quiet -e '.[dev,demo,kerberos]' || { \
	    echo "the kerberos extra could not be built: installing without it (the Kerberos tests will skip, and fail in CI)"; \
	    $(BIN)/pip install --quiet -e '.[dev,demo]'; }; \
	else \
	  echo "no krb5-config (libkrb5-dev): installing without the kerberos extra"; \
	  echo "$(BIN)/pip install --quiet -e '.[dev,demo]'"; \
	  $(BIN)/pip install --quiet -e '.[dev,demo]'; \
	fi
	@touch $@

install: $(STAMP) kerberos-extra

# A venv made before libkrb5-dev was there gets the extra once it can build.
kerberos-extra: $(STAMP)
	@if command -v krb5-config >/dev/null && ! $(BIN)/python -c 'import gssapi, krb5' 2>/dev/null; then \
	  echo "installing the kerberos extra (builds gssapi and krb5 against libkrb5-dev)"; \
	  $(BIN)/pip install --quiet -e '.[kerberos]' \
	    || echo "the kerberos extra could not be built: the Kerberos tests will skip (and fail in CI)"; \
	fi

# The playground: a local Slack in the browser, the bot, emulated Hyper-V hosts.
# `make demo SPEED=600` runs the bot's clock 600x (a 72 h TTL ends in 7 minutes).
PORT ?= 3000
SPEED ?= 1
demo: install
	@$(BIN)/checkpoint-bot demo --port $(PORT) --speed $(SPEED)

# The same product on the command line, as a scripted walkthrough.
demo-cli: install
	@bash deploy/examples/demo-walkthrough.sh

# The browser tests drive Debian's Chromium (never a downloaded browser):
# installed when missing, if this is a root shell with apt-get (as in CI).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
	        chromium fonts-noto-color-emoji >/dev/null; } \
	      || echo "chromium could not be installed: the browser tests will skip (and fail in CI)"; \
	  else \
	    echo "no $(CHROMIUM), and no root apt-get to install it: the browser tests will skip"; \
	  fi; \
	fi

# The deployment tests (docs/deploy.md) use Debian's tools: mmdebstrap and
# buildah build and smoke-test the container image, systemd-analyze checks the
# units, kubectl's kustomize renders the Kubernetes manifests. Installed when
# missing, if this is a root shell with apt-get (as in CI).
DEPLOY_TOOLS := mmdebstrap:mmdebstrap buildah:buildah systemd-analyze:systemd kubectl:kubernetes-client
deploy-tools:
	@missing=""; for pair in $(DEPLOY_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's$$missing for the deployment tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends$$missing >/dev/null; } \
	      || echo "$$missing could not be installed: the deployment tests will skip (and fail in CI)"; \
	  else \
	    echo "missing$$missing, and no root apt-get to install it: the deployment tests will skip"; \
	  fi; \
	fi

# The Kerberos tests (docs/connect-hosts.md) run a real MIT KDC: Debian's
# krb5-kdc and krb5-admin-server (kdb5_util, kadmin.local), krb5-user (kinit),
# and libkrb5-dev, gcc and Python's headers to build the kerberos extra.
# Installed when missing, if this is a root shell with apt-get (as in CI).
KERBEROS_TOOLS := krb5kdc:krb5-kdc kadmin.local:krb5-admin-server kinit:krb5-user \
	krb5-config:libkrb5-dev gcc:gcc
kerberos-tools:
	@missing=""; for pair in $(KERBEROS_TOOLS); do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	  || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's$$missing for the Kerberos tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends$$missing >/dev/null; } \
	      || echo "$$missing could not be installed: the Kerberos tests will skip (and fail in CI)"; \
	  else \
	    echo "missing$$missing, and no root apt-get to install it: the Kerberos tests will skip"; \
	  fi; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Four workers: the tests mostly wait (subprocesses, WinRM, a browser), so
# even two cores run them twice as fast; TEST_WORKERS=0 runs them in-process.
# A file's tests stay on one worker: several share a module-scoped demo and
# browser page in file order.
TEST_WORKERS ?= 4
test: kerberos-tools lint browser deploy-tools
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
