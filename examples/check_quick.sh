#!/bin/bash
# check_quick.sh [BUILD]: what `make examples-quick` runs. Every example runs in quick mode and
# is checked on what it printed and wrote (the conventions in examples/README.md): exit status 0
# and a last line "RESULT: ok ..." (quickstart: its exactness line), every .dat file parses as a
# table of finite numbers, a saved hyperparameter file has the documented layout and sizes
# (docs/file-formats.md), when gnuplot is installed the PNGs are there and are PNGs, and
# lr_schedule and adam_schedule, killed with SIGKILL and resumed, end on the same bytes.
# Variants run too: adam_schedule --optimizer adamw (AdamW, which must learn its weight decay:
# weight_decay.dat differs from the start).
set -u
build=${1:-build}
out=$build/examples-quick
rm -rf "$out"
mkdir -p "$out"
have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1
[ $have_gnuplot = 1 ] || echo "examples-quick: gnuplot not installed, PNG checks skipped"

num_re='^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$'

# A .dat file: '#' comments, then lines of finite numbers, the same count on each; at least one.
check_dat() {
    awk -v re="$num_re" '
        function fail(msg) { print FILENAME ": " msg; bad = 1; exit }
        /^#/ || NF == 0 { next }
        {
            rows++
            if (nf == 0) nf = NF
            else if (NF != nf) fail("line " NR ": " NF " fields, the first data line has " nf)
            for (i = 1; i <= NF; i++)
                if ($i !~ re) fail("line " NR ": field " i " (" $i ") is not a finite number")
        }
        END { if (!bad && rows == 0) { print FILENAME ": no data lines"; bad = 1 } exit bad }' "$1"
}

# revl_hyperopt_save's format: header (version 1: momentum; version 2: "# optimizer NAME"),
# then a section per kind of T lines of G+1 (alpha and eps > 0, rates in (0, 1]),
# log_init_scale (G lines of 2) and meta (M lines of 2).
check_hyperparams() {
    awk -v re="$num_re" '
        function fail(msg) { print FILENAME ": " msg; bad = 1; exit }
        NR == 1 {
            if ($0 == "# revl hyperparameters 1") { want_kinds = "alpha gamma"; next }
            if ($0 == "# revl hyperparameters 2") next
            fail("header is not \"# revl hyperparameters 1\" or 2")
        }
        NR == 2 && /^# optimizer / {
            o = $3
            want_kinds = o == "momentum" ? "alpha gamma" : o == "adam" ? "alpha beta1 beta2 eps" \
                : o == "rmsprop" ? "alpha gamma beta2 eps" \
                : o == "adamw" ? "alpha beta1 beta2 eps weight_decay" : ""
            if (want_kinds == "") fail("unknown optimizer " o)
            next
        }
        /^# n_steps / { T = $3; next }
        /^# n_groups / { G = $3; next }
        /^# n_meta / { M = $3; next }
        /^# / { sec++; title[sec] = $2; next }
        NF == 0 { next }
        {
            for (i = 1; i <= NF; i++)
                if ($i !~ re) fail("line " NR ": " $i " is not a finite number")
            t = title[sec]
            per_step = t != "log_init_scale" && t != "meta"
            want = per_step ? G + 1 : 2
            if (NF != want) fail("line " NR ": " NF " fields, expected " want)
            for (i = 2; i <= NF; i++) {
                if ((t == "alpha" || t == "eps") && !($i > 0)) fail("line " NR ": " t " " $i " is not positive")
                if ((t == "gamma" || t == "beta1" || t == "beta2") && !($i > 0 && $i <= 1)) fail("line " NR ": " t " " $i " outside (0, 1]")
                if (t == "weight_decay" && !($i >= 0)) fail("line " NR ": weight_decay " $i " is negative")
            }
            n[sec]++
        }
        END {
            if (bad) exit 1
            nk = split(want_kinds, k, " ")
            got = ""
            for (s = 1; s <= sec; s++) got = got (s > 1 ? " " : "") title[s]
            if (got != want_kinds " log_init_scale meta") {
                print FILENAME ": sections " got ", expected " want_kinds " log_init_scale meta"; exit 1
            }
            for (s = 1; s <= nk; s++)
                if (n[s] != T) { print FILENAME ": " title[s] " has " n[s] + 0 " lines, expected " T; exit 1 }
            if (T < 1 || G < 1 || n[nk + 1] != G || n[nk + 2] + 0 != M) {
                print FILENAME ": log_init_scale/meta have " n[nk + 1] + 0 ", " n[nk + 2] + 0 " lines, expected " G ", " M
                exit 1
            }
        }' "$1"
}
check_png() {
    [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
        { echo "$1: not a PNG file"; return 1; }
}

# The files an example wrote into its output directory.
check_outputs() {
    local dir=$1 ok=0 f n_png=0
    [ -d "$dir" ] || { echo "$dir: the example wrote no output directory"; return 1; }
    for f in "$dir"/*.dat; do
        [ -e "$f" ] || continue
        check_dat "$f" || ok=1
    done
    for f in "$dir"/hyperparams*.txt; do
        [ -e "$f" ] || continue
        check_hyperparams "$f" || ok=1
    done
    if [ $have_gnuplot = 1 ]; then
        for f in "$dir"/*.png; do
            [ -e "$f" ] || continue
            n_png=$((n_png + 1))
            check_png "$f" || ok=1
        done
        [ $n_png -gt 0 ] || { echo "$dir: gnuplot is installed but no PNG was drawn"; ok=1; }
    fi
    return $ok
}

# --resume (lr_schedule, adam_schedule): the run killed with SIGKILL once its first
# meta-iteration is checkpointed, then resumed, must end on the uninterrupted run's bytes
# (final checkpoint and learned hyperparameters). Bounded: 120 s of waiting at most.
# The watch is on checkpoint.bin, not on the curve: the example appends the curve line first
# and then saves the checkpoint (a temporary file renamed into place), so checkpoint.bin
# existing means both are complete; a kill between the two would leave nothing to resume.
check_resume() {
    local name=$1 bin=$2 ref=$3 dir=$out/$1-resume
    rm -rf "$dir"
    "$bin" --quick --out "$dir" >"$dir.log" 2>&1 &
    local pid=$! waited=0
    while [ $waited -lt 1200 ] && ! [ -e "$dir/checkpoint.bin" ] && kill -0 $pid 2>/dev/null; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    "$bin" --quick --out "$dir" --resume >>"$dir.log" 2>&1 || { echo "resumed run failed"; return 1; }
    grep -q '^resumed from' "$dir.log" || { echo "the resumed run found no checkpoint"; return 1; }
    cmp -s "$ref/checkpoint.bin" "$dir/checkpoint.bin" || { echo "checkpoint differs"; return 1; }
    cmp -s "$ref/hyperparams.txt" "$dir/hyperparams.txt" || { echo "hyperparameters differ"; return 1; }
    return 0
}

# adam_schedule --optimizer adamw: the learned weight decay (weight_decay.dat, as applied) must
# differ from the start the log printed ("weight_decay = 0.01"), somewhere in steps and groups.
check_weight_decay_learned() {
    local dir=$1 log=$2 start
    start=$(grep -o 'weight_decay = [-+0-9.eE]*' "$log" | head -n 1 | awk '{ print $3 }')
    [ -n "$start" ] || { echo "the log prints no start weight_decay"; return 1; }
    [ -e "$dir/weight_decay.dat" ] || { echo "no weight_decay.dat"; return 1; }
    awk -v s="$start" '/^#/ || NF == 0 { next }
        { for (i = 2; i <= NF; i++) { d = $i / s - 1; if (d > 1e-3 || d < -1e-3) moved = 1 } }
        END { if (!moved) { print "weight_decay.dat: every value is the start " s; exit 1 } }' \
        "$dir/weight_decay.dat"
}

failed=()
n=0
t_all=$(date +%s%N)
# run_c SRC LABEL [EXTRA ARGS]: one C/C++ example, run and checked, reported as LABEL
run_c() {
    local src=$1 label=$2
    shift 2
    local name bin log args run rc secs why files last
    name=$(basename "${src%.*}")
    bin=$build/examples/$name
    log=$out/$label.log
    n=$((n + 1))
    if [ ! -x "$bin" ]; then
        echo "FAIL  $label: $bin not built"
        failed+=("$label")
        return
    fi
    args=()
    # C examples other than quickstart take --quick and --out; quickstart and C++ run as they are
    if [ "${src##*.}" = c ] && [ "$name" != quickstart ]; then
        args=(--quick --out "$out/$label" "$@")
    fi
    # MPI examples run on 2 ranks; rank 1 writes its copy of the files into rank1/, which must
    # be the same bytes as rank 0's (the timings of learning_curve.dat aside)
    run=()
    case $name in mpi_*) run=(env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2) ;; esac
    t0=$(date +%s%N)
    "${run[@]}" "$bin" "${args[@]}" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && [ ${#run[@]} -gt 0 ]; then
        for f in "$out/$label"/hyperparams.txt "$out/$label"/*.dat; do
            case $f in */learning_curve.dat) continue ;; esac
            cmp -s "$f" "$out/$label/rank1/$(basename "$f")" || { echo "$name: rank 1's $(basename "$f") differs"; rc=1; }
        done
    fi
    secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    why=""
    if [ $rc -ne 0 ]; then
        why="exit status $rc"
    elif [ "$name" = quickstart ]; then
        grep -q "reversed exactly to w0" "$log" || why="no 'reversed exactly to w0' line"
    elif ! tail -n 1 "$log" | grep -q '^RESULT: ok'; then
        why="last line is not 'RESULT: ok ...'"
    fi
    if [ -z "$why" ] && [ ${#args[@]} -gt 0 ]; then
        files=$(check_outputs "$out/$label") || why="output files: $files"
    fi
    if [ -z "$why" ] && [ "$label" = adam_schedule-adamw ]; then
        r=$(check_weight_decay_learned "$out/$label" "$log") || why="weight decay not learned: $r"
    fi
    if [ -z "$why" ] && { [ "$label" = lr_schedule ] || [ "$label" = adam_schedule ]; }; then
        r=$(check_resume "$name" "$bin" "$out/$label") || why="kill -9 and --resume: $r"
    fi
    if [ -z "$why" ]; then
        last=$(tail -n 1 "$log")
        [ "$name" = quickstart ] && last="reversed exactly to w0"
        printf 'ok    %-14s %6ss  %s\n' "$label" "$secs" "${last#RESULT: ok }"
    else
        printf 'FAIL  %-14s %6ss  %s\n' "$label" "$secs" "$why"
        echo "---- last lines of $log:"
        tail -n 15 "$log" | sed 's/^/    /'
        failed+=("$label")
    fi
}
for src in examples/*.c examples/*.cpp; do
    [ -e "$src" ] || continue
    run_c "$src" "$(basename "${src%.*}")"
done
# the examples' variants: AdamW inside adam_schedule, learning its weight decay too
run_c examples/adam_schedule.c adam_schedule-adamw --optimizer adamw
# The PyTorch examples (python/examples/torch_*.py): --quick, checked like the C ones (exit
# status, last line "RESULT: ok", .dat files, PNGs), with PYTHON (make: /usr/bin/python3) and the
# library in lib/.
python=${PYTHON:-/usr/bin/python3}
shlib=${REVL_LIBRARY:-$(ls "$PWD"/lib/librevl.so.*.*.* 2>/dev/null | head -n 1)}
for src in python/examples/torch_*.py; do
    [ -e "$src" ] || continue
    name=$(basename "${src%.py}")
    log=$out/$name.log
    n=$((n + 1))
    t0=$(date +%s%N)
    REVL_LIBRARY=$shlib "$python" "$src" --quick --out "$out/$name" >"$log" 2>&1
    rc=$?
    secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    why=""
    if [ $rc -ne 0 ]; then
        why="exit status $rc"
    elif ! tail -n 1 "$log" | grep -q '^RESULT: ok'; then
        why="last line is not 'RESULT: ok ...'"
    else
        files=$(check_outputs "$out/$name") || why="output files: $files"
    fi
    if [ -z "$why" ]; then
        last=$(tail -n 1 "$log")
        printf 'ok    %-14s %6ss  %s\n' "$name" "$secs" "${last#RESULT: ok }"
    else
        printf 'FAIL  %-14s %6ss  %s\n' "$name" "$secs" "$why"
        echo "---- last lines of $log:"
        tail -n 15 "$log" | sed 's/^/    /'
        failed+=("$name")
    fi
done
secs=$(awk -v a="$t_all" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
if [ ${#failed[@]} -gt 0 ]; then
    echo "examples-quick: FAILED ${failed[*]} (${#failed[@]} of $n examples; logs and outputs in $out)"
    exit 1
fi
echo "examples-quick: all $n examples ok in ${secs} s (logs and outputs in $out)"
