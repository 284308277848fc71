# Build and quality gates for the netmedic.k8s collection (repo root = collection root).
#
# Targets:
#   make test         setup, then every stage in TEST_STAGES: banner per stage, summary
#                     with timings, non-zero exit if any stage failed (.ci/run runs this)
#   make setup        .venv (newest pyenv 3.13/3.12, deps from pyproject.toml),
#                     collections/ansible_collections/netmedic/k8s -> ../../.., and the
#                     host packages of bindep.txt's `test` profile (apt-get; bindep.txt is
#                     the one list of host packages: scripts/hostdeps.py)
#   make check        the edit loop: lint of changed files, all units, the integration and
#                     API-double tests of what changed (scripts/check.sh; CHECK_BASE=<commit>)
#   make fresh-check  make setup + the fast stages (units ruff pep8 changelog-lint build) in a clean
#                     Debian 12 root (mmdebstrap; a clean copy of the checkout; private mount namespace),
#                     then bindep.txt's node+test programs all present (scripts/fresh-check.sh; root;
#                     deb.debian.org or NETMEDIC_FRESH_MIRROR; caches: /var/cache/netmedic-fresh)
#   make lint         ruff + ansible-lint (production) + antsibull-changelog lint
#   make hooks        git's pre-commit hook: the same linters on the staged files (scripts/hooks/pre-commit)
#   make sanity       ansible-test sanity, offline, on a copy (scripts/sanity.sh)
#   make compat       units + sanity again with the lowest ansible-core meta/runtime.yml claims
#                     (.venv-compat, scripts/compat.sh)
#   make units        pytest tests/unit
#   make integration  pytest tests/integration (modules run for real in a sandbox)
#   make apidouble    pytest tests/lab tests/double + tests/cluster's behaviour suite (the lab's Kubernetes
#                     API double: what a real server cannot do on demand, the double's own tests, and
#                     the probes that keep it agreeing with the real server); the whole of tests/cluster
#                     runs against the real control plane in realcluster-test (tests/cluster/README.md)
#   make apidouble-cluster  the whole of tests/cluster against the double (not a stage: an edit loop
#                     without the real control plane)
#   make build        ansible-galaxy collection build -> build/, tarball content checked
#   make lab-test     VM lab: deps, up, pytest tests/labvm (real kernels), then down
#                     (LAB_KEEP=1 keeps the lab up; default: down if this target started it, else
#                     back to the clean state: labctl up --clean / release)
#   make lab-up       VM lab up (3 nodes; LAB_NODES=N); lab-down; lab-inject FAULTS='N-2 N-3'
#   make demo         on the VM lab: inject node faults, diagnose, remediate --check --diff,
#                     apply, diagnose again, compare; then down (DEMO_KEEP=1 keeps the lab)
#   make demo-local   ansible-playbook playbooks/diagnose.yml (localhost, read-only)
#   make molecule     molecule test of roles/conntrack_tuning on the VM lab
#   make realcluster-test  tests/cluster on the lab's real control plane (lab/k8s, simulated nodes)
#   make realnode-test     tests/realnode: W-3, C-1, C-3 against a real kube-proxy on two lab VMs
#                     joined as real nodes (lab/k8s/realnode-test.sh)
#   make clean        generated output; make distclean also removes .venv, collections/
#
# Measured here (2 cores, shared host: +-50 %; cold = fresh clone, empty HOME caches):
#   setup        cold ~50-110 s (pip, ~700 MB) / warm 0.1 s (stamp: sha256 of pyproject.toml)
#                + bindep.txt check 1-5 s (bindep import + dpkg-query); apt-get of the missing
#                test packages when there are any (iputils-arping + bpftool: ~40 s)
#   sanity       cold 72-97 s (per-test venvs from PyPI) / warm 14-25 s; all 24 tests,
#                compile+import on Python 3.9-3.13 (3.14 absent: skipped with a warning)
#   lint, sanity, compat, units, integration, apidouble, build, lab-test, molecule: the stage
#                times of the latest CI run are in README.md ("Measured"), earlier ones in
#                docs/test_times.md (2026-12-03 10:14: apidouble 1251 s and lab-test 1895 s side by side)
#   lab-test     cold (empty /var/cache/netmedic-lab) ~2.5 min more: deps 8-14 s + image build
#                ~80 s + first up (3 cold boots + state save)
# The VM lab's chain (lab-test, molecule) runs in the background beside the other stages
# (TEST_STAGES below); the other stages run one after another.

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
# The VM lab's real-kernel tests (tests/labvm, then Molecule; lab/vm/README.md) run as one background chain
# (scripts/stages.sh: bg:) beside the controller-side stages: the guests mostly wait on SSH and reboots, and
# CI's limit is on the wall time (2026-12-03 23:23, 519bb36: 59 min end to end, 65 min an hour earlier; the VM chain -
# lab-test 2755 s, molecule 60 s, realnode-test 520 s - the critical path, the 2 cores busy throughout).
# realcluster-test: tests/cluster against the real control plane (lab/k8s, issue 15 item 4; binaries built once per
# machine: a cold build took 1103 s on 2026-12-03, then cached).
# realnode-test: the workflows against a real kube-proxy on two lab VMs that are real nodes (tests/realnode, issue 15
# item 3), last in the VM chain (it needs the lab, on a control plane of its own beside realcluster-test's).
# realcluster-test runs in a background chain of its own from after units, beside integration and apidouble: with 253
# tests it took 1447 s after apidouble in CI (2026-12-03): 68 min end to end, the foreground the critical path.
# The CI run of e69992e (2026-12-03 19:10) ran tests/cluster twice, on the double in apidouble and on the real server
# beside it: 71 min, every chain slowed by the other two on 2 cores. Since then apidouble runs of tests/cluster only
# the `double_strict` tests (APIDOUBLE_SELECT: the behaviour suite and the tests whose assertions are stricter on the
# double); every tests/cluster test runs against the real server.
TEST_STAGES := bg:lab-test,molecule,realnode-test lint sanity compat units bg:realcluster-test integration apidouble build
# FAIL_FAST=1 stops at the first failing stage (default: run all, report all).
FAIL_FAST ?= 0
# Extra arguments, e.g. make sanity SANITY_ARGS='--test pep8', make units PYTEST_ARGS='-k sysctl'.
SANITY_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help setup test compat lint ruff pep8 shellcheck ansible-lint changelog-lint sanity units integration apidouble build ee-context demo clean distclean
.PHONY: lab-test lab-test-locked lab-up lab-down lab-inject demo-local demo-locked molecule molecule-locked

# The VM lab (lab/vm/labctl). One lab per machine, shared by everyone on it: whatever
# uses the VMs holds an exclusive flock on /tmp/netmedic-lab.lock (NETMEDIC_LAB_LOCK overrides;
# labctl takes it itself;
# `labctl locked -- CMD` runs CMD under it, and its children - labctl, pytest's
# tests/labvm conftest - see the lock held by an ancestor and do not wait for themselves).
LABCTL := $(ROOT)/lab/vm/labctl
LAB_INVENTORY := $(or $(NETMEDIC_LAB_STATE),/run/netmedic-lab)/inventory.yml
LAB_NODES ?= 3
# lab-test: 1 = leave the lab up, 0 = take it down, auto = down only if lab-test started it, else reset to the clean
# state (labctl up --clean, then labctl release).
LAB_KEEP ?= auto
# demo: 1 = leave the lab up (with the remediated nodes) at the end.
DEMO_KEEP ?= 0
FAULTS ?= all

help:
	@sed -n '/^# Targets:/,/^#$$/{s/^#   //p}' $(firstword $(MAKEFILE_LIST))

setup:
	@scripts/setup.sh

# The commit hook (scripts/hooks/pre-commit: ruff, pep8, shellcheck, ansible-lint and changelog lint on what is staged).
.PHONY: hooks
hooks:
	git config core.hooksPath scripts/hooks

# The edit loop (< 2 min): not a stage of `make test`.
.PHONY: check fresh-check
check: setup
	@scripts/check.sh

fresh-check: setup
	@scripts/fresh-check.sh

# setup is the first stage (timed like the others); if it fails nothing else runs.
# EXTRA_STAGES: stages run after setup and before TEST_STAGES (.ci/run: bg:fresh-check, beside the rest).
EXTRA_STAGES ?=
test:
	@scripts/stages.sh $(if $(filter 1 yes true,$(FAIL_FAST)),--fail-fast) setup $(EXTRA_STAGES) $(TEST_STAGES)

# -k: run all three linters, fail if any failed.
lint: setup
	@$(MAKE) -k ruff pep8 shellcheck ansible-lint changelog-lint NETMEDIC_SETUP_DONE=1

ruff: setup
	@echo '--- ruff check'
	ruff check --output-format concise .

# ansible-test sanity's shellcheck, in a second: every tracked shell script.
shellcheck: setup
	@echo '--- shellcheck'
	git ls-files -z --cached --others --exclude-standard '*.sh' | xargs -0 shellcheck

# The pep8 rules of ansible-test sanity (its own ignore list, max 160), without the 2-minute sanity run.
pep8: setup
	@echo '--- pycodestyle (ansible-test sanity pep8 rules)'
	scripts/pep8.sh

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

compat: setup
	@scripts/compat.sh $(SANITY_ARGS)

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

# APIDOUBLE_JOBS: pytest-xdist workers (each starts its own API doubles on OS-chosen ports);
# 0 = one process. Module tests run in-process (tests/harness.py), playbooks as ansible-playbook.
# APIDOUBLE_SELECT: of tests/cluster (every item marked `cluster` there) only the `double_strict` tests run against
# the double in `make test` - the behaviour suite (the probes that keep the double agreeing with a real
# kube-apiserver), the suite's own fixtures, and the tests that assert more where nothing else writes (the check-mode
# snapshot, the Nodes' resourceVersion); each marker says why (tests/cluster/conftest.py).
APIDOUBLE_JOBS ?= 2
APIDOUBLE_SELECT ?= not cluster or double_strict
APIDOUBLE_JUNIT ?= apidouble
.PHONY: apidouble-cluster
apidouble: setup
	@mkdir -p tests/output/junit
	@echo 'pytest -n $(APIDOUBLE_JOBS) --dist worksteal tests/lab tests/double tests/cluster -m "$(APIDOUBLE_SELECT)" $(PYTEST_ARGS)'
	@pytest -n $(APIDOUBLE_JOBS) --dist worksteal tests/lab tests/double tests/cluster -m "$(APIDOUBLE_SELECT)" \
	  --junitxml=tests/output/junit/$(APIDOUBLE_JUNIT).xml $(PYTEST_ARGS) || { \
	  rc=$$?; [ $$rc -eq 5 ] && echo 'apidouble: pytest collected no tests (exit 5): failing'; exit $$rc; }

apidouble-cluster: setup
	@$(MAKE) apidouble APIDOUBLE_SELECT='cluster' APIDOUBLE_JUNIT=apidouble-cluster NETMEDIC_SETUP_DONE=1

# tests/cluster against the lab's real control plane (lab/k8s/k8sctl, issue 15): build the
# binaries if missing, up (clean state, with the audit log of lab/k8s/audit-policy.yaml that the
# tests' `audit` fixture reads), seed + simulated nodes, pytest (writes allowed; NETMEDIC_TEST_K8SCTL=1:
# the `fresh` tests reset it to the seed after them), down; prints the wall time. A stage of `make test`.
# Measured on this 2-core machine: see tests/cluster/README.md and README.md "Measured".
K8SCTL := $(ROOT)/lab/k8s/k8sctl
K8S_KUBECONFIG := $(or $(NETMEDIC_K8S_KUBECONFIG),$(or $(NETMEDIC_K8S_STATE),/run/netmedic-k8s)/admin.kubeconfig)
# The kube-apiserver's audit log (lab/k8s/audit-policy.yaml): the tests' `audit` fixture reads what the modules sent.
K8S_AUDIT_LOG := $(or $(NETMEDIC_K8S_STATE),/run/netmedic-k8s)/logs/audit.log
.PHONY: realcluster-test
realcluster-test: setup
	@$(K8SCTL) build
	@mkdir -p tests/output/junit
	@start=$$(date +%s); rc=0; NETMEDIC_K8S_AUDIT_POLICY=$(ROOT)/lab/k8s/audit-policy.yaml $(K8SCTL) locked -- bash -c 'rc=0; \
	  $(K8SCTL) up && $(K8SCTL) seed || rc=$$?; \
	  if [ $$rc -eq 0 ]; then NETMEDIC_TEST_KUBECONFIG=$(K8S_KUBECONFIG) NETMEDIC_TEST_WRITABLE=1 NETMEDIC_TEST_K8SCTL=1 \
	    NETMEDIC_TEST_AUDIT_LOG=$(K8S_AUDIT_LOG) \
	    pytest tests/cluster --junitxml=tests/output/junit/realcluster.xml $(PYTEST_ARGS) || rc=$$?; fi; \
	  [ $$rc -eq 5 ] && echo "realcluster-test: pytest collected no tests (exit 5): failing"; \
	  $(K8SCTL) down; exit $$rc' || rc=$$?; \
	  echo "realcluster-test: up + seed + tests + down took $$(( $$(date +%s) - start )) s (rc=$$rc)"; exit $$rc

# tests/realnode: W-3, C-1, C-3 decided by a real kube-proxy v1.37.2 in IPVS mode on two lab VMs joined as real nodes
# (lab/k8s/vmnode.py) of a control plane of its own; lab/k8s/realnode-test.sh holds both locks and always takes
# the nodes, the control plane and the lab down. A stage of `make test` (the VM chain). Times: tests/realnode/README.md.
.PHONY: realnode-test
realnode-test: setup
	@$(K8SCTL) build
	@lab/k8s/realnode-test.sh $(PYTEST_ARGS)

build: setup
	@rm -rf build && mkdir -p build
	ansible-galaxy collection build --force --output-path build .
	@$(PYTHON) scripts/check-build.py build/netmedic-k8s-*.tar.gz
	@$(MAKE) ee-context NETMEDIC_SETUP_DONE=1

# The AWX execution environment's build context (ansible-builder create: offline, no image).
# Building the image needs podman/docker: ansible-builder build --context build/ee -t netmedic-ee
ee-context: setup
	@test -n "$$(ls build/netmedic-k8s-*.tar.gz 2>/dev/null)" || { echo 'ee-context: run make build first'; exit 1; }
	@cp build/netmedic-k8s-*.tar.gz execution-environment/netmedic-k8s.tar.gz
	ansible-builder create -f execution-environment/execution-environment.yml --context build/ee --output-filename Containerfile
	@rm -f execution-environment/netmedic-k8s.tar.gz
	@grep -q 'ansible-galaxy collection install' build/ee/Containerfile && test -s build/ee/_build/netmedic/netmedic-k8s.tar.gz \
	  && echo 'ee-context: build/ee/Containerfile + _build/ ready (collection tarball included)'

demo-local: setup
	$(ANSIBLE_PLAYBOOK) playbooks/diagnose.yml

lab-up: setup
	@$(LABCTL) deps
	@$(LABCTL) up --nodes $(LAB_NODES)

lab-down:
	@$(LABCTL) down

lab-inject: setup
	@$(LABCTL) inject $(FAULTS)

# The whole run holds the lab lock (deps, up, pytest, down).
lab-test: setup
	@$(LABCTL) locked -- $(MAKE) lab-test-locked NETMEDIC_SETUP_DONE=1

lab-test-locked:
	@mkdir -p tests/output/junit
	@finish() { case "$(LAB_KEEP)" in \
	              1) echo "lab left up (LAB_KEEP=1): $(LAB_INVENTORY); make lab-down stops it";; \
	              auto) $(LABCTL) release;; \
	              *) $(LABCTL) down;; esac; }; \
	rc=0; $(LABCTL) deps && $(LABCTL) up --nodes $(LAB_NODES) --clean || rc=$$?; \
	if [ $$rc -ne 0 ]; then echo 'lab-test: the lab did not come up'; finish; exit $$rc; fi; \
	echo 'NETMEDIC_LAB_INVENTORY=$(LAB_INVENTORY) pytest tests/labvm $(PYTEST_ARGS)'; \
	NETMEDIC_LAB_INVENTORY=$(LAB_INVENTORY) pytest tests/labvm --junitxml=tests/output/junit/labvm.xml $(PYTEST_ARGS) || rc=$$?; \
	[ $$rc -eq 5 ] && echo 'lab-test: pytest collected no tests (exit 5): failing'; \
	finish; exit $$rc

# The lab demo (lab/vm/demo.sh) holds the lab lock from start to end.
demo: setup
	@$(LABCTL) locked -- $(MAKE) demo-locked NETMEDIC_SETUP_DONE=1

demo-locked:
	@DEMO_KEEP=$(DEMO_KEEP) LAB_NODES=$(LAB_NODES) lab/vm/demo.sh

# Molecule (extensions/molecule/conntrack_tuning): its create/destroy start and stop the lab,
# so the whole run holds the lab lock. prerun is off (it would install the collection into
# ~/.ansible and shadow this checkout).
molecule: setup
	@$(LABCTL) locked -- $(MAKE) molecule-locked NETMEDIC_SETUP_DONE=1

molecule-locked:
	molecule test --scenario-name conntrack_tuning

clean:
	rm -rf build report tests/output .ansible .pytest_cache .ruff_cache
	find . -path ./.venv -prune -o -path ./collections -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv .venv-compat collections
