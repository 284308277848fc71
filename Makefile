# Build and quality gates for the netmedic.k8s collection (repo root = collection root).
#
# Targets:
#   make test         setup, then every stage in TEST_STAGES: banner per stage, summary
#                     with timings, non-zero exit if any stage failed (.ci/run runs this)
#   make setup        .venv (newest pyenv 3.13/3.12, deps from pyproject.toml),
#                     collections/ansible_collections/netmedic/k8s -> ../../.., shellcheck
#   make lint         ruff + ansible-lint (production) + antsibull-changelog lint
#   make sanity       ansible-test sanity, offline, on a copy (scripts/sanity.sh)
#   make units        pytest tests/unit
#   make integration  pytest tests/integration (modules run for real in a sandbox)
#   make apidouble    pytest tests/lab (the lab's Kubernetes API double: behaviour suite and
#                     cluster modules over HTTP through the real kubernetes client)
#   make build        ansible-galaxy collection build -> build/, tarball content checked
#   make demo         ansible-playbook playbooks/diagnose.yml (localhost)
#   make clean        generated output; make distclean also removes .venv, collections/
#
# Measured here (2 cores, shared host: +-50 %; cold = fresh clone, empty HOME caches):
#   setup        cold ~50-110 s (pip, ~700 MB) / warm 0.1 s (stamp: sha256 of pyproject.toml)
#   sanity       cold 72-97 s (per-test venvs from PyPI) / warm 14-25 s; all 24 tests,
#                compile+import on Python 3.9-3.13 (3.14 absent: skipped with a warning)
#   lint         4-15 s;  units 1-3 s;  integration 24-60 s;  build 1-3 s
# Stages run one after another, never in parallel (2 cores).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
ANSIBLE_PLAYBOOK := $(BIN)/ansible-playbook
# The venv first on PATH: ansible-lint warns otherwise, and the pyenv shims
# that come first on this machine's PATH exit 127 for non-global versions.
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export PYTHONDONTWRITEBYTECODE := 1

# Stages of `make test`, in order; later work appends (e.g. TEST_STAGES += lab).
# Each one is a make target of the same name.
TEST_STAGES := lint sanity units integration apidouble build
# FAIL_FAST=1 stops at the first failing stage (default: run all, report all).
FAIL_FAST ?= 0
# Extra arguments, e.g. make sanity SANITY_ARGS='--test pep8', make units PYTEST_ARGS='-k sysctl'.
SANITY_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help setup test lint ruff ansible-lint changelog-lint sanity units integration apidouble build demo clean distclean

help:
	@sed -n '/^# Targets:/,/^#$$/{s/^#   //p}' $(firstword $(MAKEFILE_LIST))

setup:
	@scripts/setup.sh

# setup is the first stage (timed like the others); if it fails nothing else runs.
test:
	@scripts/stages.sh $(if $(filter 1 yes true,$(FAIL_FAST)),--fail-fast) setup $(TEST_STAGES)

# -k: run all three linters, fail if any failed.
lint: setup
	@$(MAKE) -k ruff ansible-lint changelog-lint NETMEDIC_SETUP_DONE=1

ruff: setup
	@echo '--- ruff check'
	ruff check --output-format concise .

# ansible-lint writes .ansible/ (gitignored, build_ignored).
ansible-lint: setup
	@echo '--- ansible-lint (production profile)'
	ansible-lint --offline $$([ -t 1 ] || echo --nocolor)

changelog-lint: setup
	@echo '--- antsibull-changelog lint'
	antsibull-changelog lint
	antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

# See scripts/sanity.sh for the offline workarounds (get_pip_25_2.py stand-in,
# copy instead of the symlinked path, no pyenv shims on PATH). Default --local
# (warm ~7 s faster than --venv); SANITY_MODE=venv also works. SANITY_PYTHON=3.13
# limits compile/import to one Python.
sanity: setup
	@scripts/sanity.sh $(SANITY_ARGS)

# pytest exit 5 (no tests collected) fails the stage like any other non-zero exit.
units: setup
	@mkdir -p tests/output/junit
	@echo 'pytest tests/unit $(PYTEST_ARGS)'
	@pytest tests/unit --junitxml=tests/output/junit/units.xml $(PYTEST_ARGS) || { \
	  rc=$$?; [ $$rc -eq 5 ] && echo 'units: pytest collected no tests (exit 5): failing'; exit $$rc; }

integration: setup
	@mkdir -p tests/output/junit
	@echo 'pytest tests/integration $(PYTEST_ARGS)'
	@pytest tests/integration --junitxml=tests/output/junit/integration.xml $(PYTEST_ARGS) || { \
	  rc=$$?; [ $$rc -eq 5 ] && echo 'integration: pytest collected no tests (exit 5): failing'; exit $$rc; }

apidouble: setup
	@mkdir -p tests/output/junit
	@echo 'pytest tests/lab $(PYTEST_ARGS)'
	@pytest tests/lab --junitxml=tests/output/junit/apidouble.xml $(PYTEST_ARGS) || { \
	  rc=$$?; [ $$rc -eq 5 ] && echo 'apidouble: pytest collected no tests (exit 5): failing'; exit $$rc; }

build: setup
	@rm -rf build && mkdir -p build
	ansible-galaxy collection build --force --output-path build .
	@$(PYTHON) scripts/check-build.py build/netmedic-k8s-*.tar.gz

demo: setup
	$(ANSIBLE_PLAYBOOK) playbooks/diagnose.yml

clean:
	rm -rf build report tests/output .ansible .pytest_cache .ruff_cache
	find . -path ./.venv -prune -o -path ./collections -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv collections
