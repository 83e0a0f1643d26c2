# tabr-serve: one entry point for setup, build, test and benchmarks.
#   make test   installs what is missing, builds everything and runs every test
#   make bench  prints the benchmark tables
#   make run    starts the service on the demo model (arrives with the HTTP service)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The cargo target dir lives outside the clone so fresh clones rebuild incrementally.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tabr-serve/target
export TABR_BIN_DIR ?= $(CARGO_TARGET_DIR)/release
PNPM_VERSION := 9.15.9
APT_PACKAGES := libopencv-dev clang libclang-dev opencv-data pkg-config ffmpeg redis-server \
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev chromium \
  nasm meson ninja-build dpkg-dev xz-utils unzip debootstrap binutils

.PHONY: image deploy-deps deploy-test help deps apt pnpm node-modules build sample test lint contracts test-rust test-node test-reference test-tooling test-python demo-model face-models uv bench run serve worker portable pack test-install clean

help:
	@echo "make deps   install apt packages, pnpm, node modules and uv (what is missing)"
	@echo "make build  build the Rust core, CLIs and the Node addon"
	@echo "make test   deps + build + the lint gates + every test (Rust, Node, the v2 reference, the tooling's)"
	@echo "make lint   rustfmt, clippy -D warnings, Biome, ruff"
	@echo "make contracts  regenerate what the service and the tooling read from the core (specs, error codes)"
	@echo "make bench  benchmark tables (medians and ratios, never pass/fail)"
	@echo "make portable  the release build of the addon (glibc 2.28, FFmpeg/OpenCV inside) and ONNX Runtime, in dist/portable"
	@echo "make pack   release tarballs of @org/tabr-native and its platform packages (gnu, gpu) in dist/npm"
	@echo "make image  the service's container image (podman; deploy/Containerfile), one image for serve and worker"
	@echo "make deploy-test  deploy/compose.yaml with podman: queue mode, scaling, a killed worker, a Redis restart"
	@echo "make test-install  the tarballs' library policy, then npm install + run in bare Debian 11, 12 and 13"
	@echo "make demo-model / test-python   Python tooling (uv, torch; not in make test)"
	@echo "make run    install, build, create .env with a token, serve the demo models on :8000"
	@echo "make serve  the service from a built tree (settings from the environment / .env)"
	@echo "make worker a queue-mode worker from a built tree (EXECUTION_MODE=queue, REDIS_URL, ...)"

deps: apt pnpm node-modules uv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }
	@command -v node >/dev/null || { echo "node not found: install Node.js 20 first"; exit 1; }

pnpm:
	@command -v pnpm >/dev/null || npm install -g pnpm@$(PNPM_VERSION)

node-modules: pnpm
	pnpm install --frozen-lockfile

build: deps
	cargo build --release -p tabr-cli
	pnpm --filter @org/tabr-native run build
	pnpm --filter @org/tabr-web run build
	pnpm --filter @org/tabr-serve run build
	@$(MAKE) --no-print-directory sample

# A face clip the project draws itself (tabr-synth: a mouth micro-movement of the demo data
# set), for the first request `make run` prints. .samples/ is ignored by git.
SAMPLE := .samples/face.mkv
sample:
	@[ -f $(SAMPLE) ] || { mkdir -p .samples && $(TABR_BIN_DIR)/tabr-synth --demo-seed 7 --demo-class micro_movement $(SAMPLE); }

test: build lint portable test-rust test-node test-reference test-tooling test-install deploy-test

# The service's contracts generated from the native core (error codes, feature specs):
# packages/server/src/core/native.generated.ts; its test fails when this is needed.
contracts: build
	node packages/server/scripts/contracts.mjs

# The lints are gates: rustfmt, clippy with warnings as errors (the workspace denies
# unsafe_op_in_unsafe_fn and unsafe fns without a `# Safety` section), Biome over the
# TypeScript and JavaScript (biome.json), ruff over the Python (ruff.toml).
lint: node-modules uv
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	pnpm exec biome ci --error-on-warnings .
	uv run --no-project --with ruff==0.17.6 ruff check scripts tests/media

# The Python tooling's tests that need no torch (tables and their spec, the exporter's spec
# decision, the guide's text and its Node step on the demo models, the release's library
# policy check), and the ones that do, skipped with their reason shown (-rs) where torch is
# absent: make test-python runs those.
test-tooling: build uv
	uv run --no-project --with pytest==9.2.0 --with numpy==2.4.6 --with pandas==3.1.1 --with pyarrow==26.0.1 \
	  pytest -q -rs scripts/tests/test_spec.py scripts/tests/test_export.py scripts/tests/test_guide.py \
	  scripts/tests/test_portable_policy.py

test-rust:
	cargo test --release --workspace

test-node:
	pnpm -r run test

# poc-abs v2 against its independent route (scripts/poc_abs_v2_reference.py: numpy, onnxruntime
# and OpenCV from its PEP 723 header, no torch), on every face fixture: part of `make test`.
test-reference: build uv
	uv run --no-project --with pytest==9.2.0 pytest scripts/tests/test_v2_reference.py -q

# The rest of the Python tooling (torch from PyPI): never part of `make test`. Its dependencies are pinned in
# scripts/requirements.txt (the versions its tests ran with).
PY_DEPS := --with-requirements scripts/requirements.txt
# uv runs the Python tools and the Open Inference Protocol client test (tritonclient from PyPI).
# A Debian python3 refuses system-wide pip installs (PEP 668): then into ~/.local, on PATH below.
export PATH := $(HOME)/.local/bin:$(PATH)
uv:
	@command -v uv >/dev/null || python3 -m pip install --quiet uv 2>/dev/null \
	  || python3 -m pip install --quiet --user --break-system-packages uv

test-python: build uv
	uv run --no-project $(PY_DEPS) pytest scripts/tests -q -rs

# poc-abs v2's face models: MediaPipe's TFLite files from PyPI converted to ONNX and checked
# against the TFLite interpreter on the face fixtures (the results are committed).
face-models: uv
	uv run scripts/convert_face_models.py

# The demo models: tabr-demo (v1, synthetic clips) and tabr-demo-v2 (v2, clips made from the
# face fixtures of ../shared at build time). Torch on the CPU, a few minutes each; committed.
demo-model: build uv
	uv run --no-project $(PY_DEPS) python scripts/make_demo_model.py
	uv run --no-project $(PY_DEPS) python scripts/make_demo_model.py --spec 2

bench: build portable
	cargo run --release -p tabr-bench
	cargo run --release -p tabr-bench -- --face-mesh
	node bench/http.mjs
	node bench/queue.mjs
	node bench/portable.mjs
	node bench/scale-out.mjs

# make run: from a fresh clone, install and build what is missing, create .env with a random
# token the first time (printed once, never logged), then serve the demo models on :8000.
run: build
	@if [ ! -f .env ]; then \
	  token=$$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 48); \
	  sed "s|^AI_API_TOKEN=.*|AI_API_TOKEN=$$token|" .env.example > .env; chmod 600 .env; \
	  echo "Created .env with a new API token (shown once; it stays in .env):"; echo "  $$token"; echo; \
	fi
	@port=$$(grep -E '^PORT=' .env | cut -d= -f2); port=$${PORT:-$${port:-8000}}; \
	echo "Page:  http://127.0.0.1:$$port/app/   (record or upload a face video; the token above)"; \
	echo "Docs:  http://127.0.0.1:$$port/docs"; \
	echo "Try, from this folder, with a clip the build drew ($(SAMPLE)):"; \
	echo "  curl -H \"Authorization: Bearer \$$(grep ^AI_API_TOKEN= .env | cut -d= -f2)\" -F video=@$(SAMPLE) http://127.0.0.1:$$port/infer/tabr-demo"; \
	echo "The same clip through the poc-abs v2 model (landmark-aligned faces): .../infer/tabr-demo-v2"; echo
	@$(MAKE) --no-print-directory serve

# make serve: the service in the foreground from a built tree; settings from the environment.
serve:
	node packages/server/dist/bin/tabr-serve.cjs serve

# A queue-mode worker: same MODEL_REGISTRY, REDIS_URL and CONCURRENCY as the API's settings.
worker:
	node packages/server/dist/bin/tabr-serve.cjs worker

# make pack: npm tarballs of @org/tabr-native and @org/tabr-native-linux-x64-gnu (the release
# addon, stripped) in dist/npm; offline, nothing is published.
# The release build (scripts/portable/): dav1d, FFmpeg, zlib and OpenCV from Debian's source
# packages, built once with Zig toward glibc 2.28 and cached under ~/.cache/tabr-serve/portable
# by a hash of their scripts (cold: see the README's figures); then the addon (its own cargo
# target folder) and ONNX Runtime's CPU and CUDA libraries, in dist/portable.
portable: deps
	scripts/portable/addon.sh dist/portable
	scripts/portable/runtime.sh dist/portable

pack: portable
	pnpm --filter @org/tabr-native run pack

# The service's image (deploy/Containerfile) with podman, from the release tarballs and the
# demo models; the base image is made from Debian's packages here (no registry).
image: deploy-deps build pack
	deploy/image.sh

# podman (with runc and CNI's DNS plugin, so services find each other by name) and
# podman-compose from PyPI, for make image and make deploy-test.
DEPLOY_APT := podman runc golang-github-containernetworking-plugin-dnsname
deploy-deps: uv
	@missing=$$(for p in $(DEPLOY_APT); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v podman-compose >/dev/null || uv tool install -q podman-compose==1.5.0

# The compose deployment end to end (deploy/deploy-test.mjs): sync, async + poll, a signed
# callback, workers 1 → 2, a worker killed mid-job, Redis restarted; every job once. Part of
# make test (about a minute with podman's layer cache, a few more the first time); podman
# runs rootful here, so make test needs root, as make deps's apt step does.
deploy-test: deploy-deps build pack
	tag=$$(deploy/image.sh) && node deploy/deploy-test.mjs "$$tag"

# The release as users get it: every ELF file of every tarball against the manylinux_2_28
# policy, then npm install of the tarballs in bare Debian 11, 12 and 13 root file systems
# (debootstrap minbase, cached) with only Node 20 copied in, no network, and the numbers of
# the development build.
test-install: pack
	python3 scripts/portable/policy.py dist/npm/*.tgz
	node tests/install/chroot.mjs dist/npm

clean:
	cargo clean
	rm -rf node_modules packages/*/node_modules packages/tabr-native/*.node dist
