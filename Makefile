# virtio-tmem top-level Makefile: the one place that says how each part is
# built and which tests `make test` runs.
#
#   make           build the host library (release)
#   make test      every test the tree has; ends with "N passed, N failed"
#   make bench     benchmarks: host library and guests; JSON under build/bench/
#
# Variables: BUILD (output root), FUZZ_SECONDS (fuzzer time per target),
# TEST_SCALE (multiplies randomized test lengths; 1 in CI).

BUILD        ?= build
FUZZ_SECONDS ?= 60
TEST_SCALE   ?= 1

CC      ?= cc
CLANG   ?= clang
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wformat=2 -Wno-unused-parameter
CSTD    := -std=c11 -D_GNU_SOURCE
INCS    := -Iinclude -Ihost-lib
LIBS    := -llz4 -luring -lpthread

LIB_SRCS   := $(sort $(wildcard host-lib/*.c))
LIB_HDRS   := $(wildcard host-lib/*.h) include/tmem.h
TEST_SRCS  := $(sort $(wildcard tests/host-lib/t_*.c))
TEST_HDRS  := $(wildcard tests/host-lib/*.h)
FUZZ_SRCS  := $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_SRCS := $(sort $(wildcard tests/bench/*.c))
BENCH_HDRS := $(wildcard tests/bench/*.h)

# Two builds of the library and its tests: plain, and under ASan+UBSan.
CFLAGS_release := -O2 -g
CFLAGS_asan    := -O1 -g -fno-omit-frame-pointer \
		  -fsanitize=address,undefined -fno-sanitize-recover=all
VARIANTS := release asan

.PHONY: all deps lib test test-host-lib test-fuzz bench clean
.DELETE_ON_ERROR:

all: lib

deps:
	@scripts/install-deps.sh

lib: $(BUILD)/release/libtmem.a $(BUILD)/release/libtmem.so

define variant_rules
$(BUILD)/$(1)/obj/%.o: host-lib/%.c $(LIB_HDRS) | deps
	@mkdir -p $$(@D)
	$$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) -fPIC -fvisibility=hidden $(INCS) -c $$< -o $$@

$(BUILD)/$(1)/libtmem.a: $(patsubst host-lib/%.c,$(BUILD)/$(1)/obj/%.o,$(LIB_SRCS))
	@rm -f $$@
	ar rcs $$@ $$^

# The SONAME names the ABI: bump it only for a change that breaks callers
# built against an older tmem.h (host-lib/libtmem.map versions the rest).
$(BUILD)/$(1)/libtmem.so.1: $(patsubst host-lib/%.c,$(BUILD)/$(1)/obj/%.o,$(LIB_SRCS)) host-lib/libtmem.map
	$$(CC) $(CFLAGS_$(1)) -shared -Wl,--version-script=host-lib/libtmem.map \
		-Wl,-soname,libtmem.so.1 -o $$@ $$(filter %.o,$$^) $(LIBS)

$(BUILD)/$(1)/libtmem.so: $(BUILD)/$(1)/libtmem.so.1
	ln -sf libtmem.so.1 $$@

$(BUILD)/$(1)/tests/%: tests/host-lib/%.c $(TEST_HDRS) $(BUILD)/$(1)/libtmem.a
	@mkdir -p $$(@D)
	$$(CC) $(CSTD) $(WARN) $(CFLAGS_$(1)) $(INCS) -Itests/host-lib $$< \
		$(BUILD)/$(1)/libtmem.a $(LIBS) -ldl -o $$@
endef
$(foreach v,$(VARIANTS),$(eval $(call variant_rules,$(v))))

test-bins = $(patsubst tests/host-lib/%.c,$(BUILD)/$(1)/tests/%,$(TEST_SRCS))

test: deps
	@scripts/run-tests.sh

# One suite of host-lib test programs: make test-host-lib VARIANT=asan
VARIANT ?= release
test-host-lib: $(call test-bins,$(VARIANT)) $(BUILD)/$(VARIANT)/libtmem.so
	@TEST_SCALE=$(TEST_SCALE) tests/run-suite.sh host-lib-$(VARIANT) \
		$(call test-bins,$(VARIANT))

# libFuzzer targets, each run for FUZZ_SECONDS from its committed corpus.
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(LIB_HDRS) | deps
	@mkdir -p $(@D)
	$(CLANG) $(CSTD) -O1 -g -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all $(INCS) $< $(LIB_SRCS) $(LIBS) -o $@
test-fuzz: $(FUZZ_BINS)
	@tests/fuzz/run-fuzzers.sh $(FUZZ_SECONDS) $^

BENCH_BIN := $(BUILD)/release/bench/host-lib-bench
$(BENCH_BIN): $(BENCH_SRCS) $(BENCH_HDRS) $(BUILD)/release/libtmem.a
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(WARN) -O2 -g $(INCS) $(BENCH_SRCS) \
		$(BUILD)/release/libtmem.a $(LIBS) -o $@
# The host library first; then the guest benchmarks (tests/guest-bench/,
# docs/benchmarks.md): TCG guests, ~40 minutes (40.4 at f6f20bf), build/bench/guest.json,
# docs/bench/*.png; then live migration of a guest's store at two sizes
# (~3 minutes, build/bench/migration.json); then a store's spill tiers
# (file, NBD) against raw I/O to the same disk, no guest (~2 minutes,
# build/bench/spill-node.json).  BENCH_REPS sets the repetitions of each
# guest run.
bench: deps $(BENCH_BIN)
	@mkdir -p $(BUILD)/bench
	$(BENCH_BIN) --json $(BUILD)/bench/host-lib.json
	@tests/guest-bench/run-bench.py $(if $(BENCH_REPS),--reps $(BENCH_REPS))
	@tests/guest-bench/migration.py $(if $(BENCH_REPS),--reps $(BENCH_REPS))
	@tests/bench/spill-node.py $(if $(BENCH_REPS),--reps $(BENCH_REPS))

clean:
	rm -rf $(BUILD)

# QEMU 10.0 with the virtio-tmem device, cached outside the checkout
# (scripts/build-qemu.sh); prints the binary's path.
.PHONY: qemu test-qtest test-qemu-fuzz
qemu: deps
	@scripts/build-qemu.sh

# The virtio-tmem qtests and QEMU's own virtio qos tests, on that QEMU.
test-qtest: deps
	@tests/run-qtests.sh

# QEMU's libFuzzer target on the device (clang, ASan, UBSan), FUZZ_SECONDS.
test-qemu-fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run-qemu-fuzz.sh

# The guest module virtio_tmem.ko, against the cached guest kernel
# (scripts/build-guest-module.sh); prints its path.  VARIANT=debug builds
# it against the lockdep+KASAN kernel.
.PHONY: guest-module
guest-module: deps
	@scripts/build-guest-module.sh $(if $(filter debug,$(VARIANT)),debug,plain)

# End-to-end guests (tests/e2e/, docs/e2e.md): the module, the device and
# QEMU under TCG, every byte verified; writes build/test/e2e.json.
# E2E_TESTS=swap,spill runs some of them.
.PHONY: test-e2e run
test-e2e: deps
	@tests/e2e/run-e2e.py $(if $(E2E_TESTS),--tests $(E2E_TESTS))

# The demo, README's first command: installs and builds what is missing,
# boots a guest with -device virtio-tmem-pci under memory pressure and
# shows live figures.  HOLD=1 keeps the guest up at the end for QMP play.
run:
	@tests/e2e/demo.py $(if $(HOLD),--hold)
