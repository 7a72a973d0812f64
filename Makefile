# jointspace: one entry point for install, tests, demo and benchmarks.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MODEL  ?= open_clip:ViT-B-32@random-init
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install test lint format demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest -q

# Expanded when the recipe runs, i.e. after `install` has put scikit-image in the venv.
SAMPLES = $(shell $(BIN)/python -c 'import os, skimage; print(os.path.dirname(skimage.__file__))')/data

demo: install
	$(BIN)/jointspace embed --model '$(MODEL)' --similarity --out out/demo.parquet \
	  --text "an astronaut in a white space suit" --text "a cup of coffee on a saucer" \
	  --text "a tabby cat" --text "a rocket on the launch pad" \
	  --image $(SAMPLES)/astronaut.png --image $(SAMPLES)/coffee.png \
	  --image $(SAMPLES)/chelsea.png --image $(SAMPLES)/rocket.jpg

bench: install
	$(BIN)/python bench/encoders.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out
