# The two commands: `make demo` and `make test`. Both install what they need
# (scripts/install-deps: Debian packages, librdkafka from Debian's source
# archive, cached under $(KC_CACHE)) and build into build/.
KC_CACHE ?= $(HOME)/.cache/kc
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
export KC_CACHE

.PHONY: all deps pydeps build test unit demo bench asan fuzz clean

all: build

deps:
	@scripts/install-deps

# ... and the Python virtualenv: confluent-kafka with its Schema Registry
# serializers, the peer the integration tests cross-check against.
pydeps:
	@scripts/install-deps --python

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DCMAKE_PREFIX_PATH=$(KC_CACHE)/librdkafka >/dev/null
	@cmake --build $(BUILD)

# ASan+UBSan build of the unit and mock tests.
asan: deps
	@cmake -S . -B $(BUILD)-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKC_SANITIZE=ON \
	  -DCMAKE_PREFIX_PATH=$(KC_CACHE)/librdkafka >/dev/null
	@cmake --build $(BUILD)-asan
	@cd $(BUILD)-asan && ctest -L 'unit|mock' --output-on-failure

# The libFuzzer targets (clang, ASan+UBSan), each for a short run on its
# seed corpus; KC_FUZZ_SECONDS=600 make fuzz for a longer one.
fuzz: deps
	@KC_FUZZ_BUILD=$(abspath $(BUILD))-fuzz scripts/fuzz

# Every test: unit, mock (librdkafka mock cluster), the fuzz targets briefly,
# and integration (a real Apache Kafka broker started by scripts/kafka on
# loopback; Python peers from the test virtualenv).
test: pydeps build asan fuzz
	@scripts/run-tests $(BUILD)

unit: build
	@cd $(BUILD) && ctest -L unit --output-on-failure

demo: build
	@scripts/demo $(BUILD)

bench: deps
	@bench/run

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
