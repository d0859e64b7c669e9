#!/bin/bash
# check_install.sh (make check-install): install revl into a temporary prefix, build
# tests/install/consumer.c with nothing but `pkg-config --cflags --libs revl`, check that it
# links the shared library from the prefix, and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-cc}
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT

make --no-print-directory install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs revl)
echo "check-install: pkg-config --cflags --libs revl: $flags"
$CC -std=c11 -Wall -Wextra -Werror -pedantic tests/install/consumer.c $flags -o "$work/consumer"

# the consumer must use the installed shared library, not the static one or the tree's
if ! readelf -d "$work/consumer" | grep -q 'NEEDED.*\[librevl.so.0\]'; then
  echo "check-install: consumer does not link librevl.so.0 dynamically"; exit 1
fi
resolved=$(LD_LIBRARY_PATH="$prefix/lib" ldd "$work/consumer" | awk '/librevl.so.0/ {print $3}')
if [ "$resolved" != "$prefix/lib/librevl.so.0" ]; then
  echo "check-install: librevl.so.0 resolves to '$resolved', not into the prefix"; exit 1
fi
LD_LIBRARY_PATH="$prefix/lib" OMP_NUM_THREADS=2 "$work/consumer"
echo "check-install: OK (installed into a temporary prefix, built with pkg-config only)"
