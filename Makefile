# ROCmForge - the two commands a user needs:
#   make run    install dependencies, fetch the default model, build, start the main job
#   make test   install dependencies, build (Release, and Debug with ASan+UBSan), run every test
# Other targets: build, build-asan, fuzz, models, deps, clean.

JOBS    ?= $(shell nproc)
MODEL   ?= models/SmolLM2-135M-Instruct-Q4_1.gguf
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

.PHONY: run test deps models build build-asan fuzz test-release test-asan clean

deps:
	scripts/setup-deps

models: deps
	RF_PYTHON=.venv/bin/python scripts/fetch-models

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRF_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j$(JOBS)

# The GPU plugins (nvcc / hipcc) are compiled in the Release build only: their
# host code cannot run on a machine without a GPU, and compiling the kernels
# twice would double that part of CI's time.
build-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRF_SANITIZE=ON -DRF_WERROR=ON -DRF_CUDA=OFF -DRF_HIP=OFF \
		$(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j$(JOBS)

# The main job: the OpenAI-compatible server on the default model
# (http://127.0.0.1:8080, chat page at /). ROCMFORGE_* variables configure it.
run: models build
	./build/rocmforge info $(MODEL)
	./build/rocmforge serve -m $(MODEL)

test-release: build models
	cd build && ctest --output-on-failure -j$(JOBS)

test-asan: build-asan models
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j$(JOBS) -LE slow

# libFuzzer targets (clang), each run for FUZZ_SECONDS on its seed corpus.
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DRF_FUZZ=ON -DRF_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-fuzz -j$(JOBS)
	scripts/run-fuzzers build-fuzz $(FUZZ_SECONDS)

# The aarch64 NEON kernel sets: the core library and its unit tests
# cross-built with aarch64-linux-gnu-gcc (RF_MINIMAL: no server, CLI,
# tokenizer) and run under qemu-aarch64 on three CPU models, so every set
# runs: max (dotprod and i8mm: neon-dot, neon-i8mm, neon, scalar),
# cortex-a76 (dotprod: neon-dot, neon, scalar) and cortex-a53 (plain
# Armv8.0: neon and scalar).
NEON_CPUS ?= max cortex-a76 cortex-a53
.PHONY: test-neon
test-neon: deps
	cmake -S . -B build-neon -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DRF_MINIMAL=ON \
		-DCMAKE_BUILD_TYPE=Release -DRF_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-neon -j$(JOBS)
	@for cpu in $(NEON_CPUS); do \
		echo "test-neon: qemu-aarch64 -cpu $$cpu"; \
		(cd build-neon && QEMU_CPU=$$cpu ctest --output-on-failure -j$(JOBS)) || exit 1; \
	done

test: test-asan test-release fuzz test-neon

clean:
	rm -rf build build-asan build-fuzz build-neon
