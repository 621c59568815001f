# Two commands from a fresh clone: `make run` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/quickstart.toml
# pytest-xdist processes for `make test` (each test file runs whole in one of them; 1: serial)
TEST_WORKERS ?= 2

.PHONY: run test test-slow install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The generated detection set (configs/fashion_detection_*.toml): seeded, a few seconds.
DETECTION_SET := data/fashion_detection/classes.txt

$(DETECTION_SET): data/make_detection_set.py data/fashion_mnist/train-images-idx3-ubyte.gz
	$(BIN)/python data/make_detection_set.py data/fashion_detection

install: $(STAMP)

run: $(STAMP) $(DETECTION_SET)
	$(BIN)/edgepipe run $(CONFIG)

test: $(STAMP) $(DETECTION_SET)
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

clean:
	rm -rf artifacts test-artifacts
