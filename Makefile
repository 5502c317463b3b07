# The two commands of the README:
#   make demo   set up (venv + packages) and run the main job on this machine
#   make test   set up (venv + packages + openssh-server) and run the test suite
VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch (a plain 'torch' from PyPI would pull a multi-GB CUDA build).
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgesdk-installed

.PHONY: setup system-deps demo demo-llm test bench bench-llm

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# openssh-server: the device tests start a real sshd on loopback; gcc, gcc-aarch64-linux-gnu and qemu-user:
# the C backend's packages are built here and cross-built for aarch64, then run under qemu-aarch64.
system-deps:
	@test -x /usr/sbin/sshd && command -v cc >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null \
	  && command -v qemu-aarch64 >/dev/null || { \
	  echo "installing openssh-server, gcc, gcc-aarch64-linux-gnu and qemu-user (device and C backend tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server gcc \
	    gcc-aarch64-linux-gnu qemu-user >/dev/null; }

demo: setup
	$(VENV)/bin/edgesdk --help >/dev/null
	$(PY) examples/minilm.py --out out/minilm
	$(PY) examples/minilm.py --out out/minilm-tflite --target host-tflite

# A causal LM end to end, offline: Gemma 3 270M from its GGUF (gguf and int8), perplexity, generation here.
demo-llm: setup
	$(PY) examples/causal_lm.py --out out/gemma

test: setup system-deps
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/minilm_recipes.py
	$(PY) benchmarks/minilm_tflite.py

# llama.cpp is a peer to measure against, not a dependency: built here from its PyPI sdist (~6 min).
bench-llm: setup
	$(PY) -m pip install -q -e '.[llm-bench]'
	$(PY) -c "import llama_cpp" 2>/dev/null || CMAKE_ARGS=-DGGML_NATIVE=ON $(PY) -m pip install -q llama-cpp-python
	$(PY) benchmarks/llm.py
