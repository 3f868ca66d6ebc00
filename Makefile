# The two commands a new user types: `make run` and `make test`.
# Everything else (the virtual environment, PyTorch, the starter model) is prepared on demand.

PYTHON ?= python3
VENV ?= .venv
# A CPU build is enough everywhere and is what this project is tested with; on a CUDA machine
# override it, e.g. `make run TORCH_SPEC=torch` (pip then picks the CUDA build for Linux).
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tunesmith-installed
PYTEST_ARGS ?=

.PHONY: run test venv starter bench bundle bundle-smoke clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Converts the built-in starter model once into the user's data folder; later calls return at once.
starter: $(STAMP)
	$(VENV)/bin/tunesmith-cli setup

run: starter
	$(VENV)/bin/tunesmith

test: starter
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

bench: starter
	$(PY) bench/race.py

bundle: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bundle]"
	$(VENV)/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/tunesmith.spec

# The release check (packaging/smoke.sh): the built bundle on an empty home with no network prepares
# the starter, trains, chats, and its window shows the starter ready. Needs root or `unshare -rn`.
bundle-smoke: bundle
	SKIP_BUILD=1 packaging/smoke.sh

clean-venv:
	rm -rf $(VENV)
