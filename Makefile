# Two commands do everything on a fresh machine with Python 3.11:
#   make reproduce   set up .venv, then run every notebook headless (papermill) and print the leaderboard
#   make test        set up .venv, then run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2

.PHONY: setup reproduce reproduce-quick test test-fast test-browser lint format lab mlflow-ui tensorboard ui-screenshots clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "gesturelab needs Python 3.11 (mediapipe 0.10.21 and the pinned set); found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m gesturelab reproduce

reproduce-quick: $(STAMP)
	$(BIN)/python -m gesturelab reproduce --quick

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not browser"

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not (slow or train or integration)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Prints the URL with its token; the kernel is this .venv's python3 (no other kernel needed).
lab: $(STAMP)
	$(BIN)/jupyter lab --no-browser --ServerApp.root_dir=$(CURDIR)/notebooks --ip=127.0.0.1 --port=8888 $(if $(filter 0,$(shell id -u)),--allow-root)

# Follows MLFLOW_TRACKING_URI when it names a tracking server (nothing to start then).
mlflow-ui: $(STAMP)
	@$(BIN)/python -m gesturelab ui-links
	@case "$$MLFLOW_TRACKING_URI" in http*) echo "MLFLOW_TRACKING_URI is a server: open $$MLFLOW_TRACKING_URI";; \
	  *) $(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlruns/mlflow.db} --default-artifact-root $(CURDIR)/mlruns/artifacts --host 127.0.0.1 --port 5000;; esac

# The Keras fits' curves (every sequence run links its folder here).
tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir $(CURDIR)/build/tensorboard --host 127.0.0.1 --port 6006

# Headless Chromium (apt-get install chromium): screenshots of the MLflow UI on this store.
ui-screenshots: $(STAMP)
	$(BIN)/python benchmarks/ui_screenshots.py

test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser

clean:
	rm -rf build data/processed data/quarantine
