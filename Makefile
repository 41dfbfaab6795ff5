# engineroom.maintenance: the two commands (make demo, make test) and their parts.
# Every target installs what it needs and is quick when everything is in place.
SHELL := /bin/bash
# A failing ansible-playbook piped into tee must fail the target.
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := .demo
COLLECTION_LINK := collections/ansible_collections/engineroom/maintenance
DEMO_STAMP := $(VENV)/.demo-deps-$(shell cat requirements/controller.txt requirements.txt | sha256sum | cut -c1-12)
TEST_STAMP := $(VENV)/.test-deps-$(shell cat requirements/*.txt requirements.txt | sha256sum | cut -c1-12)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

BENCH ?=

.PHONY: bench help demo demo-clean test test-fast test-unit test-integration test-molecule sanity lint \
        build collection-link demo-deps test-deps clean

help:
	@echo "make demo        run the maintenance calendar against a local sandbox under $(DEMO_DIR)/"
	@echo "make demo-clean  stop and remove the sandbox"
	@echo "make test        every test layer: unit, integration, molecule, ansible-test sanity, ansible-lint"
	@echo "make test-fast   unit + integration only"
	@echo "make bench       run bench/ (BENCH=name for one) and rewrite docs/PERFORMANCE.md"
	@echo "make build       build the collection tarball"

# --- installation ------------------------------------------------------------------
$(BIN)/python:
	scripts/os-packages.sh demo
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(DEMO_STAMP): $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/controller.txt -r requirements.txt
	touch $@

$(TEST_STAMP): $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/test.txt
	touch $@

collection-link:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@[ -L $(COLLECTION_LINK) ] || ln -sfn ../../.. $(COLLECTION_LINK)

demo-deps: $(DEMO_STAMP) collection-link
	@scripts/os-packages.sh demo

test-deps: $(TEST_STAMP) collection-link
	@scripts/os-packages.sh test
	@bash scripts/molecule-collections.sh $(VENV)
	@bash scripts/docker-engine.sh
	@bash scripts/build-test-image.sh
	@$(BIN)/python -m tests.harness.awx  # AWX test controller: install + migrated template, both cached; skipped without ../shared/awx

# --- the demo ----------------------------------------------------------------------
DEMO_PLAY = ENGINEROOM_MAINTENANCE_LOG_DIR=$(CURDIR)/$(DEMO_DIR)/maintenance-log \
	  $(BIN)/ansible-playbook -i inventories/local -e @$(DEMO_DIR)/sandbox.yml

demo: demo-deps
	$(BIN)/python -m tests.harness.sandbox up $(DEMO_DIR)
	$(DEMO_PLAY) playbooks/daily.yml | tee $(DEMO_DIR)/results/daily.log
	$(DEMO_PLAY) playbooks/weekly.yml | tee $(DEMO_DIR)/results/weekly.log
	$(DEMO_PLAY) playbooks/monthly.yml --tags drill | tee $(DEMO_DIR)/results/monthly.log  # a restore drill for the report
	$(DEMO_PLAY) playbooks/report.yml -e maintenance_report_log_dir=$(CURDIR)/$(DEMO_DIR)/maintenance-log \
	  -e maintenance_report_dest=$(CURDIR)/$(DEMO_DIR)/results/report.html >/dev/null
	@echo
	@echo "Demo results (the daily and weekly calendar ran against the sandbox):"
	@echo "  maintenance log:     $(DEMO_DIR)/maintenance-log/MAINTENANCE_LOG.md (+ maintenance.jsonl)"
	@echo "  HTML report:         $(DEMO_DIR)/results/report.html"
	@echo "  play output:         $(DEMO_DIR)/results/daily.log, weekly.log, monthly.log (the restore drill)"
	@echo "  snapshots:           $(DEMO_DIR)/backups/ (each with its .manifest.json)"
	@echo "  Prometheus textfile: $(DEMO_DIR)/results/engineroom_health.prom"
	@echo "  sandbox variables:   $(DEMO_DIR)/sandbox.yml (PostgreSQL port and passwords)"
	@echo "Run it again: nothing changes (the week's window already completed); remove the sandbox with: make demo-clean"

demo-clean:
	@if [ -x $(BIN)/python ] && [ -d $(DEMO_DIR) ]; then $(BIN)/python -m tests.harness.sandbox down $(DEMO_DIR); fi

# --- tests -------------------------------------------------------------------------
test: test-deps
	ENGINEROOM_REQUIRE_DOCKER=1 $(BIN)/pytest tests/unit tests/integration tests/faults
	bash scripts/test-molecule.sh
	bash scripts/test-sanity.sh
	bash scripts/test-lint.sh

test-fast: $(TEST_STAMP) collection-link
	@bash scripts/molecule-collections.sh $(VENV)
	$(BIN)/pytest tests/unit tests/integration tests/faults

test-unit: $(TEST_STAMP) collection-link
	$(BIN)/pytest tests/unit

test-integration: test-deps
	ENGINEROOM_REQUIRE_DOCKER=1 $(BIN)/pytest tests/integration

test-molecule: test-deps
	bash scripts/test-molecule.sh

sanity: test-deps
	bash scripts/test-sanity.sh

lint: test-deps
	bash scripts/test-lint.sh

# --- benchmarks (not part of make test: they take minutes and want a quiet machine) ---
bench: test-deps
	$(BIN)/python -m bench.run $(BENCH)

# --- packaging ---------------------------------------------------------------------
build: $(DEMO_STAMP)
	$(BIN)/ansible-galaxy collection build --force .

clean: demo-clean
	rm -rf collections .cache tests/output engineroom-maintenance-*.tar.gz
