# Sync-Defense: `make demo` serves the CPU profile and classifies the bundled video; `make test` runs everything,
# `make test-fast` the unit tests only (no tritonserver).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ONNX := build/onnx
REPO := model_repository
SAMPLE := samples/talking_head.mp4
MODEL_SOURCES := $(wildcard checkpoints/*.pt sync_defense/model/*.py sync_defense/export/*.py sync_defense/preprocessing/*.py)

.PHONY: venv repository repository-face-graphs up down demo test test-fast perf lint train evaluate realval realmouths forgeries artefact

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first (on these machines a plain `torch` resolves to a multi-GB CUDA build).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	# silero-vad only for the ONNX model in its wheel (sync_defense/preprocessing/vad.py runs it with onnxruntime): --no-deps,
	# as its declared torch/torchaudio requirements would pull multi-GB CUDA builds. 6.2.3 ships the sequence model.
	$(BIN)/pip install -q --no-deps silero-vad==6.2.3
	# mediapipe 0.10.21 for BlazeFace and the face mesh inside its wheel (newer releases ship no models); --no-deps as
	# its declared needs would replace numpy and protobuf (pyproject lists what it really needs).
	$(BIN)/pip install -q --no-deps mediapipe==0.10.21
	touch $@

venv: $(BIN)/.installed

$(ONNX)/.exported: $(BIN)/.installed $(MODEL_SOURCES)
	$(BIN)/python -m sync_defense.export.onnx_export --out $(ONNX)
	touch $@

# The committed model_repository/ is the served CPU repository: this adds its graphs and calibration (git-ignored).
repository: $(ONNX)/.exported
	$(BIN)/python -m sync_defense.export.model_repository --profile cpu --onnx $(ONNX) --out $(REPO)

# BlazeFace and the face mesh as batched graphs, from the mediapipe wheel's .tflite files (what a GPU node serves).
$(ONNX)/.face_graphs: $(BIN)/.installed sync_defense/export/tflite_graphs.py
	$(BIN)/python -m sync_defense.export.tflite_graphs --out $(ONNX)
	touch $@

# The CPU profile with preprocess calling the face graphs through BLS, as the GPU profile does (docs/performance.md).
repository-face-graphs: $(ONNX)/.exported $(ONNX)/.face_graphs
	$(BIN)/python -m sync_defense.export.model_repository --profile cpu --face-models graphs --onnx $(ONNX) --out build/model_repository/cpu-face-graphs

up: repository
	$(BIN)/python -m devtools.local_triton up --repository $(REPO)

down: venv
	$(BIN)/python -m devtools.local_triton down

demo: repository
	$(BIN)/python -m devtools.local_triton up --repository $(REPO)
	$(BIN)/syncdefense detect --json $(SAMPLE); status=$$?; $(BIN)/python -m devtools.local_triton down; exit $$status

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not server"

perf: repository  # perf_analyzer reads metadata, configs and statistics over gRPC, where it sends no operator key
	$(BIN)/python -m devtools.local_triton up --repository $(REPO) --open metadata,model-config,statistics
	$(BIN)/python -m benchmarks.perf_analyzer --video $(SAMPLE) --concurrency 1 2 4; status=$$?; \
	  $(BIN)/python -m devtools.local_triton down; exit $$status

lint: venv
	$(BIN)/ruff check .

# Retrain the committed checkpoint from scratch: real material fetched by pinned version, rendered corpus
# (deterministic), real mouths re-timed to real speech (Video Rewrite), training, held-out report, calibration.
train: venv
	$(BIN)/python -m sync_defense.offline.realdata.build --out build/realval --training-out build/realdata/training
	$(BIN)/python -m sync_defense.offline.synthetic.corpus.generate --out build/corpus --train 300 --val 100 --workers 2
	$(BIN)/python -m sync_defense.offline.realdata.rewrite --training build/realdata/training --corpus build/corpus --clips 120
	$(BIN)/python -m sync_defense.offline.training.train --config configs/tiny.json
	# Fine-tune on 240 more real-mouth clips (the first 120 kept): fewer genuine speakers called fake.
	$(BIN)/python -m sync_defense.offline.realdata.rewrite --training build/realdata/training --corpus build/corpus --clips 360
	$(BIN)/python -m sync_defense.offline.training.train --config configs/tiny-finetune.json
	$(BIN)/python -m sync_defense.offline.training.evaluate --out build/eval
	$(BIN)/python -m sync_defense.offline.training.calibrate --out checkpoints/calibration.json

# The mouth-artefact detector (no audio; not served): trained on training-role real faces against their own
# self-blended mouths, its threshold fitted on the training-role synchronised forgeries, then measured (not fitted)
# on the validation forgeries and the real validation set: build/artefact/threshold.json.
artefact: venv
	$(BIN)/python -m sync_defense.offline.realdata.build --out build/realval --training-out build/realdata/training
	$(BIN)/python -m sync_defense.offline.realdata.forgeries --realval build/realval --out build/forgeries/validation
	$(BIN)/python -m sync_defense.offline.realdata.forgeries --training build/realdata/training --out build/forgeries/training
	$(BIN)/python -m sync_defense.offline.training.self_blended --training build/realdata/training --out build/artefact/mouth_artefact.pt
	$(BIN)/python -m sync_defense.offline.training.artefact_threshold --training build/realdata/training \
	  --forgeries build/forgeries/training --measure build/forgeries/validation --measure build/realval --report build/artefact/threshold.json

# Recordings of real people (never trained on) through the served ensemble: build/realval/report/report.md.
realval: repository
	$(BIN)/python -m sync_defense.offline.realdata.build --out build/realval --training-out build/realdata/training
	$(BIN)/python -m devtools.local_triton up --repository $(REPO)
	$(BIN)/python -m sync_defense.offline.realdata.score --manifest build/realval/manifest.json --url 127.0.0.1:8001 \
	  --out build/realval/report; status=$$?; $(BIN)/python -m devtools.local_triton down; exit $$status

# Synchronised forgeries of the real validation recordings (mouths re-made to follow another real mouth's audio or
# an audio-driven opening: rewrite, warp, generator-like lower face, transplant) with a control per recording, through
# the served ensemble: build/forgeries/validation/report/report.md, grouped by technique and driver.
forgeries: repository
	$(BIN)/python -m sync_defense.offline.realdata.build --out build/realval --training-out build/realdata/training
	$(BIN)/python -m sync_defense.offline.realdata.forgeries --realval build/realval --out build/forgeries/validation
	$(BIN)/python -m devtools.local_triton up --repository $(REPO)
	$(BIN)/python -m sync_defense.offline.realdata.score --manifest build/forgeries/validation/manifest.json --url 127.0.0.1:8001 \
	  --out build/forgeries/validation/report; status=$$?; $(BIN)/python -m devtools.local_triton down; exit $$status

# Real mouths the checkpoint never saw (Video Rewrite clips 360-599 of the training speakers, which `make train`
# does not make) through the served ensemble, and the thresholds `calibrate` would fit on them.
realmouths: repository
	$(BIN)/python -m sync_defense.offline.realdata.build --out build/realval --training-out build/realdata/training
	$(BIN)/python -m sync_defense.offline.realdata.rewrite --training build/realdata/training --corpus build/rewrite-heldout \
	  --first 360 --clips 240 --split val
	$(BIN)/python -m sync_defense.offline.training.calibrate --corpus build/rewrite-heldout --out build/eval-rewrite/calibration.json
	$(BIN)/python -m devtools.local_triton up --repository $(REPO)
	$(BIN)/python -m sync_defense.offline.training.evaluate --corpus build/rewrite-heldout --out build/eval-rewrite \
	  --triton 127.0.0.1:8001; status=$$?; $(BIN)/python -m devtools.local_triton down; exit $$status

# The held-out report in PyTorch and through the served ensemble.
evaluate: repository
	$(BIN)/python -m devtools.local_triton up --repository $(REPO)
	$(BIN)/python -m sync_defense.offline.training.evaluate --out build/eval --triton 127.0.0.1:8001; status=$$?; \
	  $(BIN)/python -m devtools.local_triton down; exit $$status
