# One-command entry points (README): `make run` (main job) and `make test` (whole suite).
# Both create .venv with the CPU torch wheel, build the extension and then run.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh') setup.py pyproject.toml

.PHONY: install test run bench cmake-test clean

install: $(VENV)/.built

$(VENV)/.deps:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q "setuptools>=64" wheel ninja numpy scipy pandas tqdm pytest hypothesis expecttest scikit-learn pytest-benchmark matplotlib
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	$(BIN)/pip install -q --no-build-isolation --no-deps -e .
	touch $@

test: install
	$(BIN)/python -m pytest python_tests -q

run: install
	$(BIN)/python -m ifru_ext experiment --model mf --methods ifru,ifru-uncalibrated,ifru-reference,scif --threads 1 --out runs/experiment-mf

bench: install
	$(BIN)/python -m pytest bench --benchmark-only -q

cmake-test: install
	cmake -S . -B build-cmake -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(BIN)/python -c 'import torch; print(torch.utils.cmake_prefix_path)')"
	cmake --build build-cmake -j2
	ctest --test-dir build-cmake --output-on-failure

clean:
	rm -rf build build-cmake ifru_ext/_C*.so $(VENV)/.built
