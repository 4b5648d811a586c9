# art-explorer: `make help` lists every target. Make variables map to script flags.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

N ?= 5000
NQ ?= 1000
OUT ?=
IMG ?=
ID ?=
LINE ?=
EPOCHS ?=
SIZE ?=
PROFILE ?=
RENDERS ?=
PORT ?= 3000
export PORT
GALLERY_PORT ?= 8000
# scaling out (README "Scaling out"): RAY=local|auto|HOST:6379 renders on Ray actors,
# RAY_WORKERS= actors, SHARDS=1 writes tar shards, NPROC=N trains under torchrun
RAY ?=
RAY_WORKERS ?=
SHARDS ?=
NPROC ?=
SRC ?=
opt = $(if $(2),$(1) $(2),)
RAY_OPTS = $(call opt,--ray,$(RAY)) $(call opt,--ray-workers,$(RAY_WORKERS))
GEN_OPTS = $(call opt,--size,$(SIZE)) $(call opt,--profile,$(PROFILE)) $(RAY_OPTS) \
	$(if $(SHARDS),--shards,)
TRAIN_PY = $(if $(NPROC),$(VENV)/bin/torchrun --nproc_per_node $(NPROC),$(PY))
TRAIN_OPTS = $(call opt,--epochs,$(EPOCHS)) $(call opt,--size,$(SIZE)) $(call opt,--profile,$(PROFILE))

.PHONY: help setup iterate renderer renderer-gallery generate generate-quality \
	generate-preview train train-forward train-inverse-quality train-inverse-all pretrain-inverse \
	predict explore explore-clip list-refs save-ref rm-ref refs-sheet score-refs score-refs-fresh gallery \
	bench bench-full test check format clean clean-data clean-quality clean-output \
	pack-shards unpack-shards

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install requirements (every target does this first)

iterate: $(STAMP) ## one full round: generate → train → score → quality → inverse → explore
	$(PY) iterate.py $(call opt,--profile,$(PROFILE))

renderer: $(STAMP) ## run the bundled renderer in the foreground (PORT=3000)
	$(PY) -m renderer.server

renderer-gallery: $(STAMP) ## contact sheet of every geometry × progressions/effects → docs/gallery.png
	$(PY) -m renderer.gallery --out docs/gallery.png

generate: $(STAMP) ## random + ref-biased data until data/ holds N pairs (N=5000 OUT=data)
	$(PY) generate.py --n $(N) $(call opt,--out,$(OUT)) $(GEN_OPTS)

generate-quality: $(STAMP) ## scored breeding from refs-scored.jsonl → data/quality/ (NQ=1000)
	$(PY) generate.py --scored --n $(NQ) --out $(or $(OUT),data/quality) $(GEN_OPTS)

generate-preview: $(STAMP) ## generation with a live preview (window, or output/preview.png)
	$(PY) generate.py --preview --n $(N) $(call opt,--out,$(OUT)) $(GEN_OPTS)

train: train-forward train-inverse-all ## forward model + inverse model

train-forward: $(STAMP) ## forward model on data/ (EPOCHS= SIZE= PROFILE=cpu|gpu)
	$(TRAIN_PY) train.py --stage forward --data data $(TRAIN_OPTS)

train-inverse-quality: $(STAMP) ## inverse model on data/quality/ only
	$(TRAIN_PY) train.py --stage inverse --data data/quality $(TRAIN_OPTS)

train-inverse-all: $(STAMP) ## inverse model on data/ + data/quality/
	$(TRAIN_PY) train.py --stage inverse --data data data/quality $(TRAIN_OPTS)

pack-shards: $(STAMP) ## folder layout → tar shards (SRC=data OUT=data-shards)
	$(PY) shards.py pack $(or $(SRC),data) $(or $(OUT),data-shards)

unpack-shards: $(STAMP) ## tar shards → folder layout (SRC=data-shards OUT=data-unpacked)
	$(PY) shards.py unpack $(or $(SRC),data-shards) $(or $(OUT),data-unpacked)

pretrain-inverse: $(STAMP) ## the bundled inverse model: renders on the fly → models/inverse-pretrained (MINUTES=65)
	$(PY) pretrain_inverse.py --minutes $(or $(MINUTES),65) --save-every 6 --workers 2 --fresh 32 --out models/inverse-pretrained

predict: $(STAMP) ## image → params: make predict IMG=path.png
	@test -n "$(IMG)" || { echo "usage: make predict IMG=path.png"; exit 2; }
	$(PY) predict.py --target "$(IMG)" $(call opt,--out,$(OUT))

explore: $(STAMP) ## grow the archive of distinct, striking pictures (output/archive/, RENDERS=500) → output/
	$(PY) explore.py $(call opt,--out,$(OUT)) $(call opt,--renders,$(RENDERS))

explore-clip: $(STAMP) ## novel children of the refs ranked by CLIP novelty (no archive) → output/
	$(PY) predict.py --explore --clip $(call opt,--out,$(OUT)) $(RAY_OPTS)

list-refs: $(STAMP) ## list references/refs.jsonl, one numbered line per ref
	$(PY) refs.py list

save-ref: $(STAMP) ## save a sample as a ref: ID=328 | ID=q:12 | ID=out:0
	@test -n "$(ID)" || { echo "usage: make save-ref ID=328|q:12|out:0"; exit 2; }
	$(PY) refs.py save "$(ID)"

refs-sheet: $(STAMP) ## render every ref into references/refs.png
	$(PY) refs.py sheet

rm-ref: $(STAMP) ## remove the LINE-th ref (1-based): LINE=3
	@test -n "$(LINE)" || { echo "usage: make rm-ref LINE=3"; exit 2; }
	$(PY) refs.py rm "$(LINE)"

gallery: $(STAMP) ## curate in the browser at http://127.0.0.1:8000 (GALLERY_PORT=8000)
	$(PY) gallery.py --port $(GALLERY_PORT)

score-refs: $(STAMP) ## aesthetic score of every ref → references/refs-scored.jsonl (cached)
	$(PY) score_refs.py

score-refs-fresh: $(STAMP) ## score-refs, ignoring the cache
	$(PY) score_refs.py --fresh

bench: $(STAMP) ## run bench/*.py at CI size; refresh bench/results/*.md
	@set -e; for f in bench/*.py; do echo "== $$f"; $(PY) $$f --quick; done

bench-full: $(STAMP) ## run bench/*.py at full size (tens of minutes on a CPU)
	@set -e; for f in bench/*.py; do echo "== $$f"; $(PY) $$f; done

test: $(STAMP) ## run the test suite
	$(PY) -m pytest -q

check: $(STAMP) ## ruff check, ruff format --check, pyright
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

format: $(STAMP) ## ruff format + ruff check --fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: clean-output ## remove checkpoints and outputs (keeps data/ and references/)
	rm -rf checkpoints

clean-data: ## remove data/ (coverage and quality data)
	rm -rf data

clean-quality: ## remove data/quality/
	rm -rf data/quality

clean-output: ## remove output/
	rm -rf output
