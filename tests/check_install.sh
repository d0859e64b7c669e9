#!/bin/bash
# check_install.sh (make check-install): install revl into a temporary prefix, build
# tests/install/consumer.c with nothing but `pkg-config --cflags --libs revl`, check that it
# links the shared library from the prefix, and run it; then link it statically with
# `pkg-config --static --libs revl` (which must bring zlib and BLAS) and run that too.
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
# consumers need revl.h only: no BLAS (or other) include paths leak through --cflags
cflags=$(pkg-config --cflags revl | xargs)
if [ "$cflags" != "-I$prefix/include" ]; then
  echo "check-install: pkg-config --cflags revl gives '$cflags', expected only -I$prefix/include"; exit 1
fi
$CC -std=c11 -Wall -Wextra -Werror -pedantic tests/install/consumer.c $flags -o "$work/consumer"

# the consumer must use the installed shared library, not the static one or the tree's
if ! readelf -d "$work/consumer" | grep -q 'NEEDED.*\[librevl.so.0\]'; then
  echo "check-install: consumer does not link librevl.so.0 dynamically"; exit 1
fi
resolved=$(LD_LIBRARY_PATH="$prefix/lib" ldd "$work/consumer" | awk '/librevl.so.0/ {print $3}')
if [ "$resolved" != "$prefix/lib/librevl.so.0" ]; then
  echo "check-install: librevl.so.0 resolves to '$resolved', not into the prefix"; exit 1
fi
data=/usr/share/datasets/fashion-mnist  # dataset-fashion-mnist, in DEB_PKGS
LD_LIBRARY_PATH="$prefix/lib" OMP_NUM_THREADS=2 "$work/consumer" \
  $data/t10k-images-idx3-ubyte.gz $data/t10k-labels-idx1-ubyte.gz

# static: librevl.a plus what --static adds (Requires.private zlib, Libs.private BLAS, -lm)
static=$(pkg-config --static --libs revl | sed 's/-lrevl\b/-l:librevl.a/')
echo "check-install: static link: $static"
$CC -std=c11 -Wall -Wextra -Werror -pedantic tests/install/consumer.c $(pkg-config --cflags revl) \
  $static -o "$work/consumer-static"
if readelf -d "$work/consumer-static" | grep -q 'NEEDED.*librevl'; then
  echo "check-install: the static consumer still needs librevl.so"; exit 1
fi
OMP_NUM_THREADS=2 "$work/consumer-static" $data/t10k-images-idx3-ubyte.gz $data/t10k-labels-idx1-ubyte.gz
echo "check-install: OK (installed into a temporary prefix, built shared and static with pkg-config only)"
