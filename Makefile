# revl: build, test and install. `make check` and `make demo` install missing Debian packages
# first (as root), so both work on a fresh machine.
.DEFAULT_GOAL := all
SHELL := /bin/bash

VERSION_MAJOR := $(shell sed -n 's/^\#define REVL_VERSION_MAJOR \([0-9]*\)/\1/p' include/revl.h)
VERSION_MINOR := $(shell sed -n 's/^\#define REVL_VERSION_MINOR \([0-9]*\)/\1/p' include/revl.h)
VERSION_PATCH := $(shell sed -n 's/^\#define REVL_VERSION_PATCH \([0-9]*\)/\1/p' include/revl.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SONAME := librevl.so.$(VERSION_MAJOR)

PREFIX ?= /usr/local
CC ?= cc
PYTHON ?= /usr/bin/python3
BUILD ?= build
OPT ?= -O2
SAN ?=

# BLAS through pkg-config: OpenBLAS first, then the generic blas (Debian ships no cblas.pc).
# BLAS=reference selects Debian's reference BLAS (libblas3, which carries the CBLAS symbols).
BLAS ?= auto
BLAS_REF_DIR ?= /usr/lib/x86_64-linux-gnu/blas
ifeq ($(BLAS),reference)
BLAS_PC :=
# <cblas.h> from -I/usr/include/x86_64-linux-gnu (Debian's alternatives link) declares the same
# cblas_* prototypes whichever BLAS provides it, so sources just include <cblas.h>.
# libblas.so.3's SONAME is also served by /usr/lib/x86_64-linux-gnu/libblas.so.3, an
# alternatives link that usually points at OpenBLAS: the runpath makes the reference library
# the one actually loaded (check-blas-reference verifies it with ldd).
BLAS_CFLAGS := -DRV_CBLAS_NETLIB -I/usr/include/x86_64-linux-gnu
BLAS_LIBS := $(BLAS_REF_DIR)/libblas.so.3 -Wl,-rpath,$(BLAS_REF_DIR)
else
BLAS_PC := $(shell pkg-config --exists openblas 2>/dev/null && echo openblas || (pkg-config --exists blas 2>/dev/null && echo blas))
BLAS_CFLAGS := $(if $(BLAS_PC),$(shell pkg-config --cflags $(BLAS_PC)))
BLAS_LIBS := $(if $(BLAS_PC),$(shell pkg-config --libs $(BLAS_PC)))
endif
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) $(SAN) -fopenmp -fno-math-errno -ffp-contract=off \
	-Iinclude -Isrc $(BLAS_CFLAGS)
LIB_WERROR ?=
LIB_CFLAGS := $(ALL_CFLAGS) $(LIB_WERROR) -fPIC -fvisibility=hidden -DREVL_BUILDING
LDLIBS := $(BLAS_LIBS) -lz -lm -fopenmp

LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/check_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(sort $(wildcard tests/testutil*.c))
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLE_CXX_SRC := $(sort $(wildcard examples/*.cpp))
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%) \
	$(EXAMPLE_CXX_SRC:examples/%.cpp=$(BUILD)/examples/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# Where the libraries go: lib/ for the main build; the sanitizer, reference-BLAS, clang and fuzz
# builds pass LIBOUT=build-<x>/lib so they never overwrite the main build's libraries.
LIBOUT ?= lib
SHLIB := $(LIBOUT)/librevl.so.$(VERSION)
STLIB := $(LIBOUT)/librevl.a
PCFILE := $(LIBOUT)/revl.pc

.PHONY: all lib tests examples bench bench-scale check check-c check-python deps demo examples-quick bench-torch install clean \
	need-blas asan valgrind
all: lib tests examples

need-blas:
	@if [ "$(BLAS)" != reference ] && [ -z "$(BLAS_PC)" ]; then \
	  echo "revl: no BLAS found through pkg-config (tried openblas, blas)."; \
	  echo "      install libopenblas-dev or libblas-dev (or run 'make deps' as root)."; exit 1; fi

lib: need-blas $(SHLIB) $(STLIB) $(PCFILE)

$(BUILD)/%.o: %.c include/revl.h $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(SHLIB): $(LIB_OBJ) lib/revl.map
	@mkdir -p $(LIBOUT)
	$(CC) -shared $(SAN) -Wl,-soname,$(SONAME) -Wl,--version-script=lib/revl.map -Wl,-z,defs \
		-o $@ $(LIB_OBJ) $(LDLIBS)
	ln -sf librevl.so.$(VERSION) $(LIBOUT)/$(SONAME)
	ln -sf $(SONAME) $(LIBOUT)/librevl.so

$(STLIB): $(LIB_OBJ)
	@mkdir -p $(LIBOUT)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(PCFILE): lib/revl.pc.in include/revl.h
	@mkdir -p $(LIBOUT)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@BLAS_PC@|$(BLAS_PC)|' $< > $@

# Tests and programs link the static library so they run from the tree without LD_LIBRARY_PATH.
$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(wildcard tests/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests -o $@ $< $(TEST_HELPERS) $(STLIB) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(wildcard examples/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STLIB) $(LDLIBS)

# C++ examples (C++11, the header's promise): the C warnings without the C-only ones.
$(BUILD)/examples/%: examples/%.cpp $(STLIB)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++11 -Wall -Wextra -Wshadow -Wno-unused-parameter $(CFLAGS) $(SAN) -Iinclude \
		-o $@ $< $(STLIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O3 -march=native -Ibench -o $@ $< $(STLIB) $(LDLIBS)

tests: $(TEST_BIN)
examples: $(EXAMPLE_BIN)

# ---- Debian packages the build, the tests and the demo need
DEB_PKGS := build-essential pkg-config libopenblas-dev libblas-dev check meson ninja-build \
	clang libclang-rt-14-dev libomp-dev g++ abigail-tools zlib1g-dev \
	python3 python3-numpy python3-pytest python3-torch gnuplot-nox dataset-fashion-mnist valgrind
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "revl: installing missing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "revl: need root to install:$$missing"; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

# Each Check suite prints its own "Checks: N, Failures: 0" line; a failing suite fails the target
# after all suites ran.
check-c: tests
	@fail=0; for t in $(TEST_BIN); do \
	  echo "== $$t"; CK_FORK=yes $(TEST_ENV) $$t || fail=1; \
	done; exit $$fail

check-python: lib
	@if [ -d python/tests ]; then cd python && REVL_LIBRARY=$(CURDIR)/$(SHLIB) $(PYTHON) -m pytest -q tests; fi

check:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-c
	@$(MAKE) --no-print-directory check-python

# The main job (README, examples/README.md): install what is missing, build the library and
# examples/lr_schedule, learn a learning-rate and momentum schedule on Fashion-MNIST and plot it
# into out/lr_schedule/ (a few minutes on 2 cores).
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory lib $(BUILD)/examples/lr_schedule
	$(BUILD)/examples/lr_schedule --out out/lr_schedule

# Every example in quick mode, each checked on its output (examples/check_quick.sh).
examples-quick: lib examples
	@bash examples/check_quick.sh $(BUILD)

# Benchmarks print tables of ratios measured side by side in one run (docs/performance.md).
# Run them on a quiet machine: a loaded one makes threads wait on each other.
bench: $(BENCH_BIN)
	@echo "== exact core: throughput, threads, buffer memory"; $(BUILD)/bench/bench_core
	@echo "== truncated hypergradients"; $(BUILD)/bench/bench_truncate
	@echo "== MLP against its floor (its dense products alone), one thread"; \
	  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_mlp_floor
	@for n in 1 2; do echo "== MLP end to end, $$n thread(s)"; \
	  OMP_NUM_THREADS=$$n OPENBLAS_NUM_THREADS=$$n $(BUILD)/bench/bench_mlp 100 1000 || exit 1; done
	@if [ -f bench/python_callback_overhead.py ]; then echo "== Python callback overhead"; \
	  REVL_LIBRARY=$(CURDIR)/$(SHLIB) $(PYTHON) bench/python_callback_overhead.py; fi
	@$(MAKE) --no-print-directory bench-torch

# PyTorch: the built-in MLP and the revl.torch bridge against unrolled reverse mode (docs/torch.md).
bench-torch: lib
	@echo "== built-in MLP against PyTorch unrolled"; \
	  REVL_LIBRARY=$(CURDIR)/$(SHLIB) $(PYTHON) bench/torch_unrolled.py
	@echo "== PyTorch CNN through revl.torch against PyTorch unrolled"; \
	  REVL_LIBRARY=$(CURDIR)/$(SHLIB) $(PYTHON) bench/torch_bridge.py

# The scale run: P = 10^6 for T = 10^4 (several minutes).
bench-scale: $(BUILD)/bench/bench_scale
	$(BUILD)/bench/bench_scale 1000000 10000

install: lib
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/revl.h $(DESTDIR)$(PREFIX)/include/revl.h
	install -m 755 $(SHLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf librevl.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/librevl.so
	install -m 644 $(STLIB) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@BLAS_PC@|$(BLAS_PC)|' \
		lib/revl.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/revl.pc

clean:
	rm -rf $(BUILD) build-* lib/librevl.* lib/revl.pc

# =============================================================================================
# Reliability and ABI checks (docs/building.md). Each builds into its own build-<x> directory
# (objects and libraries), so none of them touches the main build in build/ and lib/.
.PHONY: check-blas-reference check-clang check-header check-abi check-symbols abi-update fuzz \
	fuzz-build check-install

SUB_MAKE = $(MAKE) --no-print-directory

# ---- AddressSanitizer + UBSan over every Check suite. CK_FORK=no runs each suite in one
# process, so a leak or an error anywhere ends that process with a nonzero status.
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_CK_FORK ?= no
ASAN_ENV := CK_FORK=$(ASAN_CK_FORK) \
	ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:strict_string_checks=1:detect_stack_use_after_return=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
asan:
	@$(SUB_MAKE) BUILD=build-asan LIBOUT=build-asan/lib SAN="$(ASAN_FLAGS)" OPT=-O1 lib tests
	@fail=0; for t in $(TEST_BIN:$(BUILD)/%=build-asan/%); do \
	  echo "== asan $$t"; $(ASAN_ENV) $(TEST_ENV) $$t || { echo "revl: asan FAILED: $$t"; fail=1; }; \
	done; exit $$fail

# ---- valgrind memcheck over a representative subset (those of the list that exist).
VALGRIND_SUITES ?= check_infobuf check_fixed check_model check_schedule check_trainer check_errors check_update check_optim check_pinned \
	check_reverse check_dataset check_idx check_mlp check_hyperopt
VALGRIND_BIN = $(filter $(addprefix $(BUILD)/tests/,$(VALGRIND_SUITES)),$(TEST_BIN))
VALGRIND_OPTS ?= --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible \
	--suppressions=$(CURDIR)/tests/valgrind.supp --quiet
valgrind: tests
	@fail=0; for t in $(VALGRIND_BIN); do \
	  echo "== valgrind $$t"; \
	  CK_FORK=no OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(TEST_ENV) \
	    valgrind $(VALGRIND_OPTS) $$t || { echo "revl: valgrind FAILED: $$t"; fail=1; }; \
	done; exit $$fail

# ---- the C tests against Debian's reference BLAS (gcc, library built with -Werror)
check-blas-reference:
	@$(SUB_MAKE) BUILD=build-ref LIBOUT=build-ref/lib BLAS=reference LIB_WERROR=-Werror lib tests
	@ldd build-ref/lib/$(SONAME) | grep -q 'libblas.so.3 => $(BLAS_REF_DIR)/libblas.so.3' || \
	  { echo "revl: build-ref/lib/$(SONAME) does not load the reference BLAS"; exit 1; }
	@for t in build-ref/lib/$(SONAME) $(TEST_BIN:$(BUILD)/%=build-ref/%); do \
	  if ldd $$t | grep -E 'libopenblas|libblas.so' | grep -v -q '$(BLAS_REF_DIR)/libblas.so.3'; then \
	    echo "revl: $$t loads a BLAS other than the reference one:"; ldd $$t | grep -i blas; exit 1; fi; \
	done
	@echo "revl: library and tests load $(BLAS_REF_DIR)/libblas.so.3 (reference BLAS) only"
	@$(SUB_MAKE) BUILD=build-ref LIBOUT=build-ref/lib BLAS=reference check-c

# ---- clang builds the library warning-free and the tests pass
check-clang:
	@$(SUB_MAKE) BUILD=build-clang LIBOUT=build-clang/lib CC=clang LIB_WERROR=-Werror lib tests
	@$(SUB_MAKE) BUILD=build-clang LIBOUT=build-clang/lib CC=clang check-c

# ---- revl.h compiles alone as C11 and as C++11, pedantic and warning-free, with gcc and clang
HEADER_WARN := -Wall -Wextra -Werror -pedantic
check-header:
	@mkdir -p build-header
	gcc -std=c11 $(HEADER_WARN) -Wstrict-prototypes -Iinclude -c tests/header/only_header.c -o build-header/c_gcc.o
	clang -std=c11 $(HEADER_WARN) -Wstrict-prototypes -Iinclude -c tests/header/only_header.c -o build-header/c_clang.o
	g++ -std=c++11 $(HEADER_WARN) -Iinclude -c tests/header/only_header.cpp -o build-header/cpp_gxx.o
	clang++ -std=c++11 $(HEADER_WARN) -Iinclude -c tests/header/only_header.cpp -o build-header/cpp_clang.o
	@echo "revl: revl.h compiles alone as C11 and C++11 (gcc, g++, clang, clang++)"

# ---- exported symbols and ABI against the committed baseline (docs/api-stability.md)
# The symbol list: every dynamic symbol the library defines, with its version node.
LIST_SYMBOLS = nm -D --defined-only $(1) | awk '{print $$3}' | LC_ALL=C sort
check-symbols: lib
	@mkdir -p build-abi; $(call LIST_SYMBOLS,$(LIBOUT)/$(SONAME)) > build-abi/symbols.txt
	@bad=$$(grep -v -E '^(revl_[A-Za-z0-9_]+@@REVL_[0-9_]+|REVL_[0-9_]+)$$' build-abi/symbols.txt || true); \
	if [ -n "$$bad" ]; then echo "revl: exported symbols outside revl_*:"; echo "$$bad"; exit 1; fi
	@readelf -d $(LIBOUT)/$(SONAME) | grep -q 'Library soname: \[$(SONAME)\]' || \
	  { echo "revl: SONAME is not $(SONAME)"; exit 1; }
	@missing=$$(sed -n 's/^REVL_API [^(]*[ *]\(revl_[a-z0-9_]*\)(.*/\1/p' include/revl.h | LC_ALL=C sort -u | \
	  while read f; do grep -q "^$$f@@" build-abi/symbols.txt || echo $$f; done); \
	if [ -n "$$missing" ]; then echo "revl: note: declared in revl.h but not (yet) exported:" $$missing; fi
	@if ! diff -u abi/symbols.txt build-abi/symbols.txt; then \
	  echo "revl: the exported symbols differ from abi/symbols.txt ('-' removed, '+' added)."; \
	  echo "      If the change is intended, run 'make abi-update' and commit abi/ (docs/api-stability.md)."; \
	  exit 1; fi
	@echo "revl: $$(wc -l < build-abi/symbols.txt) exported symbols, all revl_*, match abi/symbols.txt"
	@rm -rf build-abi

# abidiff's exit status is a bit field: 1/2 = tool error, 4 = some ABI change, 8 = an
# incompatible change. Bit 4 alone covers both additions and changes of existing types (a
# struct layout change is only bit 4), so the verdict reads the summary: any removed or
# changed function or variable fails; added ones are reported and pass.
check-abi: lib
	@mkdir -p build-abi
	@set +e; abidiff --headers-dir2 include --drop-private-types abi/librevl.abi $(LIBOUT)/$(SONAME) \
	  > build-abi/abidiff.txt 2>&1; rc=$$?; set -e; cat build-abi/abidiff.txt; \
	if [ $$rc -eq 0 ]; then echo "revl: ABI identical to abi/librevl.abi"; exit 0; fi; \
	if [ $$((rc & 11)) -ne 0 ] || grep -q -E '(^|[ (])[1-9][0-9]* (Removed|Changed)' build-abi/abidiff.txt; then \
	  echo "revl: ABI change against abi/librevl.abi (removed or changed functions, variables or types; abidiff status $$rc)."; \
	  echo "      If it is intended: 'make abi-update', review 'git diff abi/', commit (docs/api-stability.md)."; \
	  exit 1; fi; \
	echo "revl: compatible additions only against abi/librevl.abi (abidiff status $$rc)"

ABIDW := abidw --headers-dir include --drop-private-types --no-comp-dir-path --no-corpus-path
abi-update: lib
	@mkdir -p abi
	$(ABIDW) --out-file abi/librevl.abi $(LIBOUT)/$(SONAME)
	$(call LIST_SYMBOLS,$(LIBOUT)/$(SONAME)) > abi/symbols.txt
	@echo "revl: abi/librevl.abi and abi/symbols.txt regenerated: review 'git diff abi/' and commit"

# ---- libFuzzer targets tests/fuzz/fuzz_*.c, each run for FUZZ_SECONDS from its committed
# corpus tests/fuzz/corpus/<target>/ (seeds and regression inputs; new inputs go to
# build-fuzz/corpus/<target>/, never into the tree). A crash, leak, UB or timeout fails.
# A target whose library entry point (FUZZ_NEEDS line in its source) is not linked yet is
# skipped with a message, unless FUZZ_STRICT=1.
FUZZ_SECONDS ?= 30
FUZZ_STRICT ?= 0
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
fuzz-build:
	@$(SUB_MAKE) BUILD=build-fuzz LIBOUT=build-fuzz/lib CC=clang \
	  SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" OPT=-O1 build-fuzz/lib/librevl.a
	@mkdir -p build-fuzz/bin
	@for src in $(FUZZ_SRC); do t=$$(basename $$src .c); \
	  need=$$(sed -n 's/^.*FUZZ_NEEDS: *\([a-z0-9_]*\).*/\1/p' $$src); \
	  if [ -n "$$need" ] && ! nm build-fuzz/lib/librevl.a 2>/dev/null | grep -q " T $$need$$"; then \
	    if [ "$(FUZZ_STRICT)" = 1 ]; then echo "revl: $$t needs $$need, not in the library"; exit 1; fi; \
	    echo "revl: SKIP $$t: $$need is not in the library yet"; rm -f build-fuzz/bin/$$t; continue; fi; \
	  echo "clang ... -o build-fuzz/bin/$$t $$src"; \
	  clang -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer -fopenmp \
	    -Iinclude -Isrc -o build-fuzz/bin/$$t $$src build-fuzz/lib/librevl.a $(LDLIBS) || exit 1; \
	done
fuzz: fuzz-build
	@fail=0; for src in $(FUZZ_SRC); do t=$$(basename $$src .c); \
	  [ -x build-fuzz/bin/$$t ] || continue; \
	  mkdir -p build-fuzz/corpus/$$t build-fuzz/artifacts tests/fuzz/corpus/$$t; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=1 \
	  build-fuzz/bin/$$t $(FUZZ_FLAGS) -artifact_prefix=build-fuzz/artifacts/$$t- \
	    build-fuzz/corpus/$$t tests/fuzz/corpus/$$t > build-fuzz/$$t.log 2>&1; rc=$$?; \
	  grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::new_units_added)' build-fuzz/$$t.log; \
	  if [ $$rc -ne 0 ]; then tail -n 60 build-fuzz/$$t.log; \
	    echo "revl: fuzz FAILED: $$t (reproducer in build-fuzz/artifacts/; keep it under tests/fuzz/corpus/$$t/ once fixed)"; fail=1; fi; \
	done; exit $$fail

# ---- install into a temporary prefix and build a consumer with pkg-config only
check-install: lib
	@bash tests/check_install.sh
