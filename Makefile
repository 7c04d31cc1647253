# Two commands set everything up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The demo runs the shipped models in numpy: it needs no torch.
$(VENV)/.installed-run: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

# The tests include short training smoke tests (torch, snnTorch, Stable-Baselines3).
$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[test,train]'
	touch $(STAMP)

# NeuroBench (its metric code, for bench_decoders.py) goes in without its dependencies: it requires
# torchaudio and tonic, whose releases pull another torch and numpy < 2, but only its datasets and
# audio pre-processors import them; its metrics need torch, snnTorch, numpy and tqdm, all here.
$(VENV)/.installed-bench: $(STAMP)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[test,train,bench]'
	$(PIP) install --quiet --no-deps -c $(CONSTRAINTS) neurobench
	touch $@

# The closed loop (plant -> sorting -> symptom decoder -> RL-SNN controller -> limiter -> plant), then
# the same seed with DBS off and continuous. Until the RL-SNN model ships, the threshold controller
# stands in; until the symptom decoder ships, the first-look session runs.
SYMPTOM_MODEL := decoders/models/symptom_gpi_beta.npz
RL_MODEL := stimulation/controllers/models/rl_snn.npz
demo: $(VENV)/.installed-run
ifneq ($(wildcard $(RL_MODEL)),)
	$(BIN)/bci run closed_loop_dbs
else ifneq ($(wildcard $(SYMPTOM_MODEL)),)
	@echo "$(RL_MODEL) is not shipped yet: the threshold controller (Little 2013) stands in."
	$(BIN)/bci run closed_loop_dbs --set controller.stage=threshold --set controller.model=null
else
	@echo "$(SYMPTOM_MODEL) is not shipped yet: running sessions/first_look.yaml instead."
	$(BIN)/bci run first_look
endif

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

lint: $(STAMP)
	$(BIN)/ruff check bci decoders stimulation tests benchmarks
	$(BIN)/ruff format --check bci decoders stimulation tests benchmarks
	$(BIN)/mypy

# Every benchmark prints its table (ours beside the peer) and writes its numbers to benchmarks/results/.
# The sorting benchmark runs SpikeInterface's offline sorters too: expect 10-20 minutes on 2 cores.
# Training the motor decoder records 9 minutes of motor_decoding in real time, trains, and scores it online
# on 5 held-out seeds (about 15 minutes; the shipped model is not touched without --ship).
bench: $(VENV)/.installed-bench
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/bench_lsl.py --json benchmarks/results/lsl.json
	$(BIN)/python benchmarks/bench_plant.py --json benchmarks/results/plant.json --figure benchmarks/results/plant_dbs_frequency.png
	$(BIN)/python benchmarks/bench_plant_env.py --json benchmarks/results/plant_env.json
	$(BIN)/python benchmarks/bench_preprocessing.py --json benchmarks/results/preprocessing.json
	$(BIN)/python benchmarks/bench_sorting.py --json benchmarks/results/sorting.json
	$(BIN)/python benchmarks/bench_replay.py --json benchmarks/results/replay.json
	$(BIN)/python benchmarks/bench_synthesis.py --json benchmarks/results/synthesis.json
	$(BIN)/python benchmarks/bench_synthesis_sorting.py --json benchmarks/results/synthesis_sorting.json
	$(BIN)/python benchmarks/bench_decoders.py --json benchmarks/results/decoders.json
	$(BIN)/python benchmarks/bench_symptom_decoder.py --train-seeds 0 1 2 3 4 5 6 7 8 --json benchmarks/results/symptom.json
	$(BIN)/python benchmarks/bench_symptom_ceiling.py --json benchmarks/results/symptom_ceiling.json
	$(BIN)/python benchmarks/train_motor_decoder.py --json benchmarks/results/motor_decoder.json
	$(BIN)/python benchmarks/bench_loop.py --json benchmarks/results/loop.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
