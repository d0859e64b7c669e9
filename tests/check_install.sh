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

# librevl_mpi (when OpenMPI is there, `make install` installs it): every file docs/mpi.md lists,
# and a consumer built with the documented pkg-config line, linked shared and static
if command -v mpicc >/dev/null 2>&1 && pkg-config --exists ompi-c; then
  for f in include/revl_mpi.h lib/librevl_mpi.so.0 lib/librevl_mpi.a lib/pkgconfig/revl-mpi.pc; do
    [ -e "$prefix/$f" ] || { echo "check-install: make install did not install $f"; exit 1; }
  done
  cat > "$work/mpi_consumer.c" <<'C'
#include <revl_mpi.h>
int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    revl_comm c;
    int rc = revl_mpi_comm_init(&c, MPI_COMM_WORLD);
    int ok = rc == REVL_OK && c.size == 1 && c.rank == 0;
    revl_mpi_comm_destroy(&c);
    MPI_Finalize();
    return ok ? 0 : 1;
}
C
  cc -std=c11 $(pkg-config --cflags revl-mpi) "$work/mpi_consumer.c" $(pkg-config --libs revl-mpi) \
    -o "$work/mpi_consumer"
  LD_LIBRARY_PATH="$prefix/lib" mpirun --allow-run-as-root --oversubscribe -np 1 "$work/mpi_consumer"
  mpicc -std=c11 -I"$prefix/include" "$work/mpi_consumer.c" "$prefix/lib/librevl_mpi.a" \
    $static -o "$work/mpi_consumer-static"
  mpirun --allow-run-as-root --oversubscribe -np 1 "$work/mpi_consumer-static"
  echo "check-install: librevl_mpi installed (shared and static) and linked with pkg-config revl-mpi"
fi
echo "check-install: OK (installed into a temporary prefix, built shared and static with pkg-config only)"
