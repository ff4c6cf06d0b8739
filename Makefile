# sheetdrop — one command to run, one to test. Environments are built from scratch when their
# requirement files change (stamp files), so `make run` and `make test` work on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
AML_VENV := .venv-aml
AML2_VENV := .venv-aml2
AZCLI_VENV := .venv-azcli
STATE := .sheetdrop
SAMPLE := samples/sales-2026-q3.xlsx

.PHONY: setup setup-dev setup-aml setup-aml2 setup-azcli run test test-app test-aml lint bench latency idle sample studio-png clean

# What running needs (requirements.txt): `make run`.
setup: $(VENV)/.installed node_modules/.installed

# And the test tooling (requirements-dev.txt), in the same .venv: `make test`.
setup-dev: setup $(VENV)/.installed-dev

setup-aml: $(AML_VENV)/.installed

# AzureML SDK v2 (azure-ai-ml): `sheetdrop publish --v2` and tests/aml2.
setup-aml2: $(AML2_VENV)/.installed

# PyPI's azure-cli, whose parser checks every `az` call of the azd hooks (tests/test_azd_hooks.py).
setup-azcli: $(AZCLI_VENV)/.installed

$(VENV)/.installed: requirements.txt function/requirements.txt step/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

# The project is installed editable without its dependencies (--no-deps), so that its packages import by
# their one name each (pyproject.toml maps them to their folders) beside the AzureML SDK.
$(AML_VENV)/.installed: requirements-aml.txt pyproject.toml
	$(PYTHON) -m venv $(AML_VENV)
	$(AML_VENV)/bin/pip install --quiet --upgrade pip
	$(AML_VENV)/bin/pip install --quiet -r requirements-aml.txt
	$(AML_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

$(AML2_VENV)/.installed: requirements-aml2.txt step/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(AML2_VENV)
	$(AML2_VENV)/bin/pip install --quiet --upgrade pip
	$(AML2_VENV)/bin/pip install --quiet -r requirements-aml2.txt
	$(AML2_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

$(AZCLI_VENV)/.installed: requirements-azcli.txt
	$(PYTHON) -m venv $(AZCLI_VENV)
	$(AZCLI_VENV)/bin/pip install --quiet --upgrade pip
	$(AZCLI_VENV)/bin/pip install --quiet -r requirements-azcli.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Starts Azurite (data in $(STATE)/azurite), the dev host and the local studio (its URL is printed),
# drops the sample workbook into the folder sales/, prints the run and the registered datasets, then
# keeps watching until Ctrl-C (which stops Azurite too).
run: setup
	@$(VENV)/bin/sheetdrop host --azurite --ui --drop $(SAMPLE) --drop-into sales

test: setup-dev setup-aml setup-aml2 setup-azcli
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest --ignore=tests/aml --ignore=tests/aml2
	$(AML_VENV)/bin/python -m pytest tests/aml
	$(AML2_VENV)/bin/python -m pytest tests/aml2

lint: setup-dev
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/pip install --quiet -r benchmarks/requirements.txt
	$(VENV)/bin/python benchmarks/bench_convert.py

latency: setup
	$(VENV)/bin/pip install --quiet -r benchmarks/requirements.txt
	$(VENV)/bin/python benchmarks/latency.py

idle: setup
	$(VENV)/bin/python benchmarks/idle.py

sample: setup-dev
	$(VENV)/bin/python samples/make_sample.py

# docs/studio.png, as the studio shows the sample's run after `make run` (headless chromium; see the script).
studio-png: setup-dev
	$(VENV)/bin/python docs/studio_png.py --out docs/studio.png

clean:
	rm -rf $(STATE) .pytest_cache .ruff_cache
