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
# zlib decompresses gzip data files (src/data/source.c).
ZLIB_CFLAGS := $(shell pkg-config --cflags zlib 2>/dev/null)
ZLIB_LIBS := $(shell pkg-config --libs zlib 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) $(SAN) -fopenmp -fno-math-errno -ffp-contract=off \
	-Iinclude -Isrc $(BLAS_CFLAGS) $(ZLIB_CFLAGS)
LIB_WERROR ?=
LIB_CFLAGS := $(ALL_CFLAGS) $(LIB_WERROR) -fPIC -fvisibility=hidden -DREVL_BUILDING
LDLIBS := $(BLAS_LIBS) $(ZLIB_LIBS) -lm -fopenmp

LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/check_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(sort $(wildcard tests/testutil*.c))
EXAMPLE_SRC := $(filter-out examples/mpi_%.c,$(sort $(wildcard examples/*.c)))
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

# Compiler lines are quiet (one "CC target" line each) unless V=1.
ifeq ($(V),1)
Q :=
SAY = :
else
Q := @
SAY = echo "  $(1) $@"
endif

.PHONY: all lib tests examples bench bench-hpo bench-scale check check-c check-python deps demo examples-quick bench-torch install clean \
	need-blas asan valgrind forget-stale-libomp
all: lib tests examples mpi

need-blas:
	@if [ "$(BLAS)" != reference ] && [ -z "$(BLAS_PC)" ]; then \
	  echo "revl: no BLAS found through pkg-config (tried openblas, blas)."; \
	  echo "      install libopenblas-dev or libblas-dev (or run 'make deps' as root)."; exit 1; fi
	@if ! pkg-config --exists zlib 2>/dev/null; then \
	  echo "revl: zlib not found through pkg-config: install zlib1g-dev (or run 'make deps' as root)."; \
	  exit 1; fi

lib: need-blas $(SHLIB) $(STLIB) $(PCFILE)

$(BUILD)/%.o: %.c include/revl.h $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	@$(call SAY,CC)
	$(Q)$(CC) $(LIB_CFLAGS) -c $< -o $@

$(SHLIB): $(LIB_OBJ) lib/revl.map
	@mkdir -p $(LIBOUT)
	@$(call SAY,LD)
	$(Q)$(CC) -shared $(SAN) -Wl,-soname,$(SONAME) -Wl,--version-script=lib/revl.map -Wl,-z,defs \
		-o $@ $(LIB_OBJ) $(LDLIBS)
	$(Q)ln -sf librevl.so.$(VERSION) $(LIBOUT)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(LIBOUT)/librevl.so

$(STLIB): $(LIB_OBJ)
	@mkdir -p $(LIBOUT)
	@rm -f $@
	@$(call SAY,AR)
	$(Q)ar rcs $@ $(LIB_OBJ)

# revl.pc: zlib in Requires.private (zlib1g-dev ships zlib.pc); BLAS only in Libs.private, so
# `pkg-config --cflags revl` does not hand consumers BLAS include paths they never need.
PC_SUBST = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@BLAS_LIBS@|$(BLAS_LIBS)|'
$(PCFILE): lib/revl.pc.in include/revl.h
	@mkdir -p $(LIBOUT)
	@$(call SAY,GEN)
	$(Q)$(PC_SUBST) $< > $@

# Tests and programs link the static library so they run from the tree without LD_LIBRARY_PATH.
$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(wildcard tests/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	@$(call SAY,CC)
	$(Q)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests -o $@ $< $(TEST_HELPERS) $(STLIB) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(wildcard examples/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	@$(call SAY,CC)
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(STLIB) $(LDLIBS)

# C++ examples (C++11, the header's promise): the C warnings without the C-only ones.
$(BUILD)/examples/%: examples/%.cpp $(STLIB)
	@mkdir -p $(dir $@)
	@$(call SAY,CXX)
	$(Q)$(CXX) -std=c++11 -Wall -Wextra -Wshadow -Wno-unused-parameter $(CFLAGS) $(SAN) -Iinclude \
		-o $@ $< $(STLIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	@$(call SAY,CC)
	$(Q)$(CC) $(ALL_CFLAGS) -O3 -march=native -Ibench -o $@ $< $(STLIB) $(LDLIBS)
# bench_dp_threads' ranks are threads joined by the tests' communicator.
$(BUILD)/bench/bench_dp_threads: tests/thread_comm.h

tests: $(TEST_BIN)
examples: $(EXAMPLE_BIN)

# ---- librevl_mpi: the communicator over OpenMPI, its own library (docs/mpi.md). Built when
# mpicc and OpenMPI's pkg-config file are there, skipped with a message otherwise; check-mpi
# (part of `make check`, which installs OpenMPI) needs them and fails without.
MPICC ?= mpicc
HAVE_MPI := $(shell command -v $(MPICC) >/dev/null 2>&1 && pkg-config --exists ompi-c 2>/dev/null && echo yes)
MPI_SONAME := librevl_mpi.so.$(VERSION_MAJOR)
MPI_SHLIB := $(LIBOUT)/librevl_mpi.so.$(VERSION)
MPI_STLIB := $(LIBOUT)/librevl_mpi.a
MPI_PCFILE := $(LIBOUT)/revl-mpi.pc
MPI_RANKS ?= 1 2 3 4
MPIRUN := mpirun --allow-run-as-root --oversubscribe
.PHONY: mpi need-mpi check-mpi demo-mpi install-mpi bench-mpi

ifeq ($(HAVE_MPI),yes)
mpi: $(MPI_SHLIB) $(MPI_STLIB) $(MPI_PCFILE) $(BUILD)/tests/mpi/check_mpi $(BUILD)/examples/mpi_lr_schedule
else
mpi:
	@echo "revl: mpicc or OpenMPI not found: librevl_mpi and the MPI tests are skipped" \
	  "(apt-get install openmpi-bin libopenmpi-dev, or make deps)"
endif
need-mpi:
	@if [ "$(HAVE_MPI)" != yes ]; then \
	  echo "revl: check-mpi needs mpicc and OpenMPI (apt-get install openmpi-bin libopenmpi-dev)"; exit 1; fi

$(BUILD)/mpi/revl_mpi.o: mpi/revl_mpi.c include/revl_mpi.h include/revl.h
	@mkdir -p $(dir $@)
	@$(call SAY,CC)
	$(Q)$(MPICC) $(ALL_CFLAGS) $(LIB_WERROR) -fPIC -fvisibility=hidden -c $< -o $@

$(MPI_SHLIB): $(BUILD)/mpi/revl_mpi.o $(SHLIB) mpi/revl_mpi.map
	@$(call SAY,LD)
	$(Q)$(MPICC) -shared $(SAN) -Wl,-soname,$(MPI_SONAME) -Wl,--version-script=mpi/revl_mpi.map \
		-Wl,-z,defs -o $@ $< -L$(LIBOUT) -lrevl
	$(Q)ln -sf librevl_mpi.so.$(VERSION) $(LIBOUT)/$(MPI_SONAME)
	$(Q)ln -sf $(MPI_SONAME) $(LIBOUT)/librevl_mpi.so

$(MPI_STLIB): $(BUILD)/mpi/revl_mpi.o
	@rm -f $@
	@$(call SAY,AR)
	$(Q)ar rcs $@ $<

$(MPI_PCFILE): mpi/revl-mpi.pc.in include/revl.h
	@$(call SAY,GEN)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(BUILD)/tests/mpi/check_mpi: tests/mpi/check_mpi.c tests/testutil_dp.c tests/testutil_dp.h $(MPI_STLIB) $(STLIB)
	@mkdir -p $(dir $@)
	@$(call SAY,CC)
	$(Q)$(MPICC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests -o $@ $< tests/testutil_dp.c $(MPI_STLIB) $(STLIB) \
		$(CHECK_LIBS) $(LDLIBS)

$(BUILD)/examples/mpi_%: examples/mpi_%.c $(wildcard examples/*.h) $(MPI_STLIB) $(STLIB)
	@mkdir -p $(dir $@)
	@$(call SAY,CC)
	$(Q)$(MPICC) $(ALL_CFLAGS) -o $@ $< $(MPI_STLIB) $(STLIB) $(LDLIBS)

$(BUILD)/bench/mpi/bench_mpi: bench/mpi/bench_mpi.c $(MPI_STLIB) $(STLIB)
	@mkdir -p $(dir $@)
	@$(call SAY,CC)
	$(Q)$(MPICC) $(ALL_CFLAGS) -O3 -o $@ $< $(MPI_STLIB) $(STLIB) $(LDLIBS)

# The data-parallel MLP 784-1000-1000-10 on 1 and 2 ranks, one thread each (docs/mpi.md).
bench-mpi: need-mpi $(BUILD)/bench/mpi/bench_mpi
	@for R in 1 2; do OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(MPIRUN) -np $$R \
	  $(BUILD)/bench/mpi/bench_mpi 1000 10 || exit 1; done

# lr_schedule's experiment on 2 ranks (a few minutes); rank 1's files must be rank 0's bytes.
demo-mpi:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory need-mpi lib mpi
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(MPIRUN) -np 2 $(BUILD)/examples/mpi_lr_schedule --out out/mpi_lr_schedule
	@for f in hyperparams.txt alpha.dat gamma.dat init_scales.dat; do \
	  cmp out/mpi_lr_schedule/$$f out/mpi_lr_schedule/rank1/$$f || exit 1; done; \
	  echo "revl: rank 1 wrote the same bytes as rank 0"

# Each rank count under a timeout: a rank left waiting in a collective fails the run, never hangs it.
check-mpi: need-mpi lib mpi
	@bad=$$(nm -D --defined-only $(MPI_SHLIB) | awk '$$2 ~ /[TDBR]/ {print $$3}' | grep -v '^revl_mpi_' || true); \
	if [ -n "$$bad" ]; then echo "revl: librevl_mpi exports symbols outside revl_mpi_*:" $$bad; exit 1; fi
	@readelf -d $(MPI_SHLIB) | grep -q 'Library soname: \[$(MPI_SONAME)\]' || \
	  { echo "revl: librevl_mpi's SONAME is not $(MPI_SONAME)"; exit 1; }
	@for R in $(MPI_RANKS); do echo "== check_mpi on $$R rank(s)"; \
	  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 timeout 300 $(MPIRUN) -np $$R \
	    $(BUILD)/tests/mpi/check_mpi || { echo "revl: check_mpi FAILED on $$R rank(s)"; exit 1; }; \
	done

# ---- Debian packages the build, the tests and the demo need
DEB_PKGS := build-essential pkg-config libopenblas-dev libblas-dev zlib1g-dev check meson ninja-build \
	clang libclang-rt-14-dev libomp-dev g++ abigail-tools \
	python3 python3-numpy python3-pytest python3-torch python3-pip python3-venv python3-setuptools python3-wheel gnuplot-nox dataset-fashion-mnist valgrind \
	openmpi-bin libopenmpi-dev
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

# Both halves run even when the first fails; the last line is one summary of them
# (tests/check_summary.sh): suites, checks, pytest counts, PASS or FAIL.
check:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@mkdir -p $(BUILD); rc=0; \
	$(MAKE) --no-print-directory check-c 2>&1 | tee $(BUILD)/check-c.log; \
	[ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	$(MAKE) --no-print-directory check-mpi 2>&1 | tee $(BUILD)/check-mpi.log; \
	[ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	$(MAKE) --no-print-directory check-python 2>&1 | tee $(BUILD)/check-python.log; \
	[ $${PIPESTATUS[0]} -eq 0 ] || rc=1; \
	bash tests/check_summary.sh $(BUILD)/check-c.log $(BUILD)/check-python.log $$rc

# Deliberate one-line bugs, each of which the tests must catch (tests/mutants.py); works on a
# copy of the tree in build-mutants/, so the checkout is never mutated.
.PHONY: mutants
# Two shards in two trees (build-mutants-0/, -1/), one per core: each mutant's rebuild and suites
# are mostly one thread, so two at a time halve the stage.
MUTANT_SHARDS ?= 2
mutants:
	@rc=0; pids=""; for k in $$(seq 0 $$(($(MUTANT_SHARDS) - 1))); do mkdir -p build-mutants-$$k; \
	  $(PYTHON) tests/mutants.py --jobs 1 --shard $$k/$(MUTANT_SHARDS) > build-mutants-$$k/log 2>&1 & \
	  pids="$$pids $$!"; done; \
	for p in $$pids; do wait $$p || rc=1; done; \
	for k in $$(seq 0 $$(($(MUTANT_SHARDS) - 1))); do echo "== mutants shard $$k/$(MUTANT_SHARDS)"; \
	  cat build-mutants-$$k/log; done; exit $$rc

# The main job (README, examples/README.md): install what is missing, build the library and
# examples/tune_schedule, and on the paper's Fashion-MNIST schedule setting run today's
# hyper-optimiser loop (50 meta-iterations, timed), then revl's default tuner in the same seconds;
# print both results on the test set and plot the best validation loss against seconds and the
# tuned schedule into out/tune_schedule/ (about two minutes on 2 idle cores). One thread each,
# so that the comparison is fair. `make demo-paper` runs the paper's loop alone (lr_schedule).
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory lib $(BUILD)/examples/tune_schedule
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BUILD)/examples/tune_schedule --out out/tune_schedule

.PHONY: demo-paper
demo-paper:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory lib $(BUILD)/examples/lr_schedule
	$(BUILD)/examples/lr_schedule --out out/lr_schedule

# Every example in quick mode, each checked on its output (examples/check_quick.sh).
examples-quick: lib examples mpi
	@PYTHON=$(PYTHON) REVL_LIBRARY=$(CURDIR)/$(SHLIB) bash examples/check_quick.sh $(BUILD)

# Benchmarks print tables of ratios measured side by side in one run (docs/performance.md).
# Run them on a quiet machine: a loaded one makes threads wait on each other.
bench: $(BENCH_BIN)
	@echo "== exact core: throughput, threads, buffer memory"; $(BUILD)/bench/bench_core
	@echo "== exact Adam core against a plain double Adam loop"; $(BUILD)/bench/bench_adam_core
	@echo "== truncated hypergradients"; $(BUILD)/bench/bench_truncate
	@echo "== MLP against its floor (its dense products alone), one thread"; \
	  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_mlp_floor
	@echo "== loading Fashion-MNIST (60,000 training images, gzip)"; $(BUILD)/bench/bench_load
	@for load in quiet busy; do echo "== BLAS threads: the count a program starts with (no environment set) against one, $$load"; \
	  env -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS $(BUILD)/bench/bench_blas_threads 100 5 $$load || exit 1; done
	@echo "== two cores at the MLP's shapes: BLAS threads, core threads, overlap"; \
	  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_overlap 100 7
	@for n in 1 2; do echo "== MLP end to end, $$n thread(s)"; \
	  OMP_NUM_THREADS=$$n OPENBLAS_NUM_THREADS=$$n $(BUILD)/bench/bench_mlp 100 1000 || exit 1; done
	@echo "== two cores by exact data parallelism: the MLP on 1 and 2 thread ranks, same bits"; \
	  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_dp_threads 100 1000 || exit 1
	@if [ -f bench/python_callback_overhead.py ]; then echo "== Python callback overhead"; \
	  REVL_LIBRARY=$(CURDIR)/$(SHLIB) $(PYTHON) bench/python_callback_overhead.py; fi
	@$(MAKE) --no-print-directory bench-torch

# PyTorch: the built-in MLP and the revl.torch bridge against unrolled reverse mode (docs/torch.md).
bench-torch: lib
	@echo "== built-in MLP against PyTorch unrolled"; \
	  REVL_LIBRARY=$(CURDIR)/$(SHLIB) $(PYTHON) bench/torch_unrolled.py
	@echo "== PyTorch CNN through revl.torch against PyTorch unrolled"; \
	  REVL_LIBRARY=$(CURDIR)/$(SHLIB) $(PYTHON) bench/torch_bridge.py
	@echo "== RMSprop's reverse pass through revl.torch, fused (hvp_dir) and not"; \
	  REVL_LIBRARY=$(CURDIR)/$(SHLIB) $(PYTHON) bench/torch_fused_dir.py

# revl's default tuner against Optuna TPE and random search at equal CPU time (issue 20, 7;
# long: 2 tasks x 3 seeds x 3 methods x budgets of 1x and 3x 50 meta-iterations). Optuna comes
# from Debian (python3-optuna), installed here when missing; the bench says so when it still is.
bench-hpo: lib
	@dpkg-query -W -f='$${Status}' python3-optuna 2>/dev/null | grep -q "install ok installed" || \
	  { if [ "$$(id -u)" = 0 ]; then echo "revl: installing python3-optuna"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-optuna \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	         --no-install-recommends python3-optuna; } || true; \
	  else echo "revl: python3-optuna missing (need root to install it)"; fi; }
	REVL_LIBRARY=$(CURDIR)/$(SHLIB) OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
	  $(PYTHON) bench/hpo_vs_blackbox.py $(HPO_ARGS)

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
	$(PC_SUBST) lib/revl.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/revl.pc
	@if [ "$(HAVE_MPI)" = yes ]; then $(MAKE) --no-print-directory install-mpi; \
	else echo "revl: OpenMPI not found: librevl_mpi not installed"; fi

install-mpi: mpi
	install -m 644 include/revl_mpi.h $(DESTDIR)$(PREFIX)/include/revl_mpi.h
	install -m 755 $(MPI_SHLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf librevl_mpi.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(MPI_SONAME)
	ln -sf $(MPI_SONAME) $(DESTDIR)$(PREFIX)/lib/librevl_mpi.so
	install -m 644 $(MPI_STLIB) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' mpi/revl-mpi.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/revl-mpi.pc

clean:
	rm -rf $(BUILD) build-* lib/librevl.* lib/librevl_mpi.* lib/revl.pc lib/revl-mpi.pc

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
VALGRIND_SUITES ?= check_infobuf check_fixed check_model check_schedule check_trainer check_errors check_update check_optim check_pinned check_grid \
	check_reverse check_dataset check_idx check_mlp check_hyperopt check_hardening check_dp check_checkpoint \
	check_coder_vec check_round_vec
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
check-clang: forget-stale-libomp
	@$(SUB_MAKE) BUILD=build-clang LIBOUT=build-clang/lib CC=clang LIB_WERROR=-Werror lib tests
	@$(SUB_MAKE) BUILD=build-clang LIBOUT=build-clang/lib CC=clang check-c

# clang's OpenMP runtime (LLVM libomp) registers each process in /dev/shm as
# __KMP_REGISTERED_LIB_<pid>_<uid> and removes the file at exit; a process killed by a signal
# leaves it behind, and a later process given that pid aborts in libomp 14 (SIGBUS on an empty
# one). Before the clang-built tests, remove this user's files of pids that no longer run, as
# libomp itself does when it can (another user's are not ours to remove: /dev/shm is sticky).
# check_checkpoint removes its killed children's files.
forget-stale-libomp:
	@u=$$(id -u); for f in /dev/shm/__KMP_REGISTERED_LIB_*_$$u; do [ -e "$$f" ] || continue; \
	  p=$${f#/dev/shm/__KMP_REGISTERED_LIB_}; p=$${p%_*}; \
	  [ -d /proc/$$p ] || rm -f "$$f"; done

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
	@# an array parameter sized by a growing count (REVL_*_COUNT) is an ABI break abidiff cannot
	@# see: a program built against the older header passes fewer entries (issue 23)
	@bad=$$(grep -n -E '\[REVL_[A-Z0-9_]*COUNT\]' include/revl.h | grep -v '^[0-9]*: *[/ ]\*' || true); \
	if [ -n "$$bad" ]; then echo "revl: a public array parameter is sized by a count that grows:"; \
	  echo "$$bad"; echo "      size it by the count it shipped with, or pass the count (docs/api-stability.md)"; exit 1; fi
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
fuzz: fuzz-build forget-stale-libomp
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
