# The two commands a newcomer needs:
#   make serve   install what is missing, build optimized, serve examples/models
#   make test    install what is missing, build with ASan+UBSan (and optimized, for
#                memory measurements), run every test
SHELL := /bin/bash
JOBS ?= $(shell nproc)
RELEASE_DIR := build/release
TEST_DIR := build/asan
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
FUZZ_SECONDS ?= 20
FUZZ_LONG_SECONDS ?= 600

.PHONY: all deps release asan serve test unit integration fuzz bench format clean

all: release

# build/.make-times: when each step of this make ended, for run-tests.sh's
# closing line on where a run's time went.
deps:
	@mkdir -p build && echo "t_start=$$(date +%s)" > build/.make-times
	@bash scripts/install-deps.sh $(DEPS_ARGS)
	@echo "t_deps_end=$$(date +%s)" >> build/.make-times

# make test also installs what only the tests need (PyTorch for Python).
test: DEPS_ARGS = --test

# The server with its Python worker and PyTorch plugin: what serve, the tests'
# memory measurements and the container need. Unit tests, fuzz targets and
# benchmark programs are built where they run (asan, bench/lib.sh).
release: deps
	@cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DMMSERVE_ROOMS= >/dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS) --target mmserve
	@echo "t_release_end=$$(date +%s)" >> build/.make-times

# What make test runs: the server, the unit tests and the fuzz targets.
asan: deps
	@cmake -S . -B $(TEST_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMMSERVE_SANITIZE=ON -DMMSERVE_ROOMS= >/dev/null
	@cmake --build $(TEST_DIR) -j $(JOBS) --target mmserve unit_tests \
	  $$(grep -q '^build fuzz_targets:' $(TEST_DIR)/build.ninja && echo fuzz_targets)
	@echo "t_asan_end=$$(date +%s)" >> build/.make-times

serve: release
	$(RELEASE_DIR)/mmserve --model-repository examples/models --python-env .venv \
	  --http-port $(HTTP_PORT) --http-address 127.0.0.1 --grpc-port $(GRPC_PORT) \
	  --metrics-port $(METRICS_PORT)

test: asan release
	@MMSERVE_MAKE_TIMES=build/.make-times bash scripts/run-tests.sh $(TEST_DIR) $(FUZZ_SECONDS)

fuzz: asan
	@bash scripts/fuzz.sh $(TEST_DIR) $(FUZZ_LONG_SECONDS)

bench: release
	@bash bench/run.sh $(RELEASE_DIR)

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build
