"""What the PyTorch benchmarks share: revl importable from the checkout, and the time and peak
extra memory of one call measured in this process (side by side in one run)."""
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))


def require_torch(prog):
    """Exit 0 with a clear message where PyTorch is missing: a benchmark against PyTorch has
    nothing to compare without it (make check installs python3-torch; tests never skip)."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        print(f"{prog}: skipped: PyTorch is not importable ({e}); "
              "install Debian's python3-torch (make deps does)")
        sys.exit(0)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(fn):
    """(result, seconds, peak extra MiB, CPU seconds): the resident-set high-water mark during
    fn() above the resident set before it (Linux: writing 5 to clear_refs resets VmHWM to
    VmRSS); the process's CPU time, which on a loaded machine is closer to the time on an
    idle one than the wall clock (one thread: equal when idle)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    return out, secs, max(0, _status_kib("VmHWM") - base) / 1024.0, cpu


def rel_diff(a, b):
    """max |a - b| / max |b|"""
    import numpy as np
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def run_isolated(script, argv, method, steps):
    """Run ``script argv --one method steps`` in a fresh process (so that one measurement's
    freed memory cannot hide the next one's peak) and return what it saved with save_one."""
    import os
    import subprocess
    import tempfile
    import numpy as np
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "one.npz")
        r = subprocess.run([sys.executable, str(script)] + list(argv) +
                           ["--one", method, str(steps), path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{method} at T = {steps} failed:\n{r.stdout}{r.stderr}")
        with np.load(path) as z:
            return {k: z[k] for k in z.files}


def save_one(path, fn):
    """In the child: measure fn() -> hypergradient namespace and save it with the figures."""
    import numpy as np
    hg, secs, mib, cpu = measure(fn)
    kinds = tuple(hg.kinds)
    np.savez(path, secs=secs, mib=mib, cpu=cpu, w0=hg.w0, meta=hg.meta, kinds=np.array(kinds),
             **{k: getattr(hg, k) for k in kinds})


def table(script, argv, steps, methods, max_torch_gib, tolerance, optimizers=("momentum",),
          targets=None):
    """Measure each revl method (key, label) and PyTorch's unrolled run ("torch") at every T
    and optimiser (passed to the script as --optimizer), each in its own process, and print
    time, peak extra memory, the ratios of the first method to torch and every method's largest
    relative hypergradient difference from torch's (over w0, meta and every kind).  The
    unrolled run is skipped where its memory, projected from the last T, passes max_torch_gib.
    targets (optional): {"time": {T: limit}, "memory": limit} on the first method's ratios to
    torch, printed as target lines under the table.
    Returns 0 when every difference is within tolerance."""
    head = " | ".join(f"{lab + ' s':>11} {'MiB':>7}" for _, lab in methods)
    hdr = (f"{'optimizer':>9} {'T':>5} | {head} | {'torch s':>9} {'MiB':>7} | "
           f"{'time ratio':>10} {'memory':>8} {'cpu ratio':>9} | max rel diff to torch")
    print(hdr)
    print("-" * len(hdr))
    worst, ratios = 0.0, []
    for opt in optimizers:
        w, r = _rows(script, list(argv) + ["--optimizer", opt], opt, steps, methods,
                     max_torch_gib)
        worst, ratios = max(worst, w), ratios + r
    for T, limit in sorted((targets or {}).get("time", {}).items()):
        if T not in steps:
            continue
        got = [t for (_, tt, t, _) in ratios if tt == T]
        _target(f"time / PyTorch's at T = {T}", max(got) if got else None, limit)
    if targets and "memory" in targets:
        got = [m for (_, _, _, m) in ratios]
        _target("extra memory / PyTorch's", max(got) if got else None, targets["memory"])
    ok = worst <= tolerance
    print(f"hypergradients agree with unrolled PyTorch: largest relative difference "
          f"{worst:.2g} ({'<=' if ok else '>'} tolerance {tolerance:g})")
    return 0 if ok else 1


def _target(what, worst, limit):
    """bench_util.h's bench_target, in Python."""
    if worst is None:
        print(f"target: {what} <= {limit:g}: not measured (the unrolled run was skipped)")
    else:
        print(f"target: {what} <= {limit:g}: worst measured {worst:.4g}: "
              f"{'met' if worst <= limit else 'NOT MET'}")


def _rows(script, argv, opt, steps, methods, max_torch_gib):
    """Print one optimiser's rows; return the largest difference and (opt, T, time ratio,
    memory ratio) of every T where torch ran."""
    per_step, worst, ratios = None, 0.0, []
    for T in steps:
        r = {k: run_isolated(script, argv, k, T) for k, _ in methods}
        row = f"{opt:>9} {T:5d} | " + " | ".join(
            f"{float(r[k]['secs']):11.2f} {float(r[k]['mib']):7.1f}" for k, _ in methods)
        projected = None if per_step is None else per_step * T
        if projected is not None and projected > max_torch_gib * 1024:
            print(row + f" | {'skipped':>9} {projected:7.0f} | (unrolled projected "
                  f"{projected / 1024:.1f} GiB > {max_torch_gib} GiB)", flush=True)
            continue
        ref = run_isolated(script, argv, "torch", T)
        secs, mib = float(ref["secs"]), float(ref["mib"])
        per_step = mib / T
        kinds = ["w0", "meta"] + [str(k) for k in ref["kinds"]]
        diffs = [max(rel_diff(r[k][x], ref[x]) for x in kinds) for k, _ in methods]
        worst = max([worst] + diffs)
        first = r[methods[0][0]]
        ratios.append((opt, T, float(first["secs"]) / secs,
                       float(first["mib"]) / max(mib, 1e-9)))
        print(row + f" | {secs:9.2f} {mib:7.1f} | {float(first['secs']) / secs:9.2f}x "
              f"{float(first['mib']) / max(mib, 1e-9):7.4f}x "
              f"{float(first['cpu']) / float(ref['cpu']):8.2f}x | "
              + " ".join(f"{d:.2g}" for d in diffs), flush=True)
    return worst, ratios


# The benches' schedules: the paper's momentum, and Adam near torch.optim.Adam's defaults
OPTIMIZERS = {"momentum": dict(alpha=0.3, gamma=0.9),
              "adam": dict(alpha=0.003, beta1=0.9, beta2=0.999, eps=1e-8)}


def schedule(model, T, optimizer, **override):
    import revl
    kw = dict(OPTIMIZERS[optimizer], **override)
    return revl.Schedule.for_model(model, T, optimizer=optimizer, **kw)


def unrolled(tm, s, w0, meta, objective):
    """revl.torch.unrolled_hypergrad of the run schedule s describes."""
    import revl.torch
    kinds = {k: s.get_kind(k) for k in s.kinds if k != "alpha"}
    return revl.torch.unrolled_hypergrad(tm, s.alpha, w0=w0, meta=meta, objective=objective,
                                         optimizer=s.optimizer, **kinds)
