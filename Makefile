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
ifeq ($(BLAS),reference)
BLAS_PC :=
BLAS_CFLAGS := -DRV_CBLAS_NETLIB -I/usr/include/x86_64-linux-gnu
BLAS_LIBS := /usr/lib/x86_64-linux-gnu/blas/libblas.so.3
else
BLAS_PC := $(shell pkg-config --exists openblas 2>/dev/null && echo openblas || (pkg-config --exists blas 2>/dev/null && echo blas))
BLAS_CFLAGS := $(if $(BLAS_PC),$(shell pkg-config --cflags $(BLAS_PC)))
BLAS_LIBS := $(if $(BLAS_PC),$(shell pkg-config --libs $(BLAS_PC)))
endif
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) $(SAN) -fopenmp -fno-math-errno \
	-Iinclude -Isrc $(BLAS_CFLAGS)
LIB_CFLAGS := $(ALL_CFLAGS) -fPIC -fvisibility=hidden -DREVL_BUILDING
LDLIBS := $(BLAS_LIBS) -lm -fopenmp

LIB_SRC := $(sort $(wildcard src/*.c src/models/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/check_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(sort $(wildcard tests/testutil*.c))
EXAMPLE_SRC := $(sort $(wildcard examples/*.c))
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

SHLIB := lib/librevl.so.$(VERSION)
STLIB := lib/librevl.a

.PHONY: all lib tests examples bench check check-c check-python deps demo install clean \
	need-blas asan valgrind
all: lib tests examples

need-blas:
	@if [ "$(BLAS)" != reference ] && [ -z "$(BLAS_PC)" ]; then \
	  echo "revl: no BLAS found through pkg-config (tried openblas, blas)."; \
	  echo "      install libopenblas-dev or libblas-dev (or run 'make deps' as root)."; exit 1; fi

lib: need-blas $(SHLIB) $(STLIB) lib/revl.pc

$(BUILD)/%.o: %.c include/revl.h src/internal.h $(wildcard src/*.h src/models/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(SHLIB): $(LIB_OBJ) lib/revl.map
	$(CC) -shared $(SAN) -Wl,-soname,$(SONAME) -Wl,--version-script=lib/revl.map -Wl,-z,defs \
		-o $@ $(LIB_OBJ) $(LDLIBS)
	ln -sf librevl.so.$(VERSION) lib/$(SONAME)
	ln -sf $(SONAME) lib/librevl.so

$(STLIB): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

lib/revl.pc: lib/revl.pc.in include/revl.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@BLAS_PC@|$(BLAS_PC)|' $< > $@

# Tests and programs link the static library so they run from the tree without LD_LIBRARY_PATH.
$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(wildcard tests/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itests -o $@ $< $(TEST_HELPERS) $(STLIB) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(STLIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O3 -march=native -Ibench -o $@ $< $(STLIB) $(LDLIBS)

tests: $(TEST_BIN)
examples: $(EXAMPLE_BIN)

# ---- Debian packages the build, the tests and the demo need
DEB_PKGS := build-essential pkg-config libopenblas-dev libblas-dev check meson ninja-build \
	python3 python3-numpy python3-pytest gnuplot-nox dataset-fashion-mnist valgrind
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

# The main job (see README): until the examples land this runs the quickstart.
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@if [ -x $(BUILD)/examples/lr_schedule ]; then $(BUILD)/examples/lr_schedule; \
	else echo "revl: placeholder demo (lr_schedule example not built yet)"; $(BUILD)/examples/quickstart; fi

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

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
