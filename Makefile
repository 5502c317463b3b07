# The two commands of the README:
#   make demo   set up (venv + packages) and run the main job on this machine
#   make test   set up (venv + packages + openssh-server) and run the test suite
VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch (a plain 'torch' from PyPI would pull a multi-GB CUDA build).
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgesdk-installed

.PHONY: setup system-deps emulated-rootfs demo demo-llm test bench bench-llm

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# openssh-server: the device tests start a real sshd on loopback; gcc, gcc-aarch64-linux-gnu and qemu-user:
# the C backend's packages are built here and cross-built for aarch64, then run under qemu-aarch64;
# chromium: the report test opens the HTML report in a real headless browser;
# mmdebstrap, qemu-user-static and binfmt-support: the emulated arm64 board (edgesdk devices emulate). Its
# aarch64 handler must be the static qemu (a chroot has no x86 loader): binfmt_misc mounted when it is not, the
# handler registered when absent, re-registered when an older (dynamic) one is.
system-deps:
	@test -x /usr/sbin/sshd && command -v cc >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null \
	  && command -v qemu-aarch64 >/dev/null && command -v mmdebstrap >/dev/null \
	  && command -v qemu-aarch64-static >/dev/null && command -v chromium >/dev/null || { \
	  echo "installing openssh-server, gcc, gcc-aarch64-linux-gnu, qemu-user(-static), binfmt-support, mmdebstrap, chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server gcc \
	    gcc-aarch64-linux-gnu qemu-user qemu-user-static binfmt-support mmdebstrap arch-test chromium >/dev/null; }
	@test -e /proc/sys/fs/binfmt_misc/register || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
	@if grep -qx "interpreter /usr/bin/qemu-aarch64" /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then \
	  update-binfmts --disable qemu-aarch64 2>/dev/null; fi
	@test -e /proc/sys/fs/binfmt_misc/qemu-aarch64 || update-binfmts --enable qemu-aarch64 || true

# The emulated board's arm64 root file system, built once (~5 min) and cached in ~/.cache/edgesdk/emulate.
emulated-rootfs: setup system-deps
	$(VENV)/bin/edgesdk devices emulate rpi4 --prepare

# The deployment goes to the emulated Raspberry Pi 4 when this machine can run one (root: namespaces, a chroot,
# apt for qemu; 10 timed runs: under qemu one MiniLM inference takes seconds), else to the local device; it
# says which (the board goes in out/devices.yaml, not the repository's example inventory). Then one HTML
# report of the runs and artifacts.
demo: setup
	$(VENV)/bin/edgesdk --help >/dev/null
	$(PY) examples/minilm.py --out out/minilm
	$(PY) examples/minilm.py --out out/minilm-tflite --target host-tflite
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "demo: deploying to an emulated Raspberry Pi 4 (qemu, arm64 Debian; its timings are the emulator's)"; \
	  $(MAKE) --no-print-directory system-deps emulated-rootfs && \
	  $(VENV)/bin/edgesdk devices emulate rpi4 --name pi-emu --devices out/devices.yaml && \
	  $(VENV)/bin/edgesdk deploy examples/minilm_model.py --target rpi4 --device pi-emu --devices out/devices.yaml \
	    --calib out/minilm/calib.npz -o out/minilm-rpi4 --runs-dir out/runs --runs 10 --warmup 1 && \
	  echo "demo: the emulated board keeps running (edgesdk devices emulate --stop --name pi-emu)"; \
	else \
	  echo "demo: deploying to the local device (an emulated board needs root)"; \
	  $(VENV)/bin/edgesdk deploy examples/minilm_model.py --target host --calib out/minilm/calib.npz \
	    -o out/minilm-host --runs-dir out/runs; \
	fi
	$(VENV)/bin/edgesdk report out/runs/*/ out/minilm/*/ -o out/report.html

# A causal LM end to end, offline: Gemma 3 270M from its GGUF (gguf and int8), perplexity, generation here.
demo-llm: setup
	$(PY) examples/causal_lm.py --out out/gemma

# Two workers (pytest-xdist), a module at a time each: its module fixtures are built once, on one worker.
TEST_WORKERS ?= 2
test: setup system-deps emulated-rootfs
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: setup
	$(PY) benchmarks/minilm_recipes.py
	$(PY) benchmarks/minilm_tflite.py

# llama.cpp is a peer to measure against, not a dependency: built here from its PyPI sdist (~6 min).
bench-llm: setup
	$(PY) -m pip install -q -e '.[llm-bench]'
	$(PY) -c "import llama_cpp" 2>/dev/null || CMAKE_ARGS=-DGGML_NATIVE=ON $(PY) -m pip install -q llama-cpp-python
	$(PY) benchmarks/llm.py
