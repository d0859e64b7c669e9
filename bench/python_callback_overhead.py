#!/usr/bin/env python3
"""Per-step cost of a Python (numpy) model callback against the same model in C.

The model: a quadratic L(w, step) = sum_i a_i (w_i - c[step, i])^2 / 2, P = 100 parameters,
T = 1000 steps, one train + one hypergrad (forward: 1 gradient call per step; reverse: 1 gradient
+ 1 HVP call per step, or 1 fused call with hvp_gives_grad).  The C version is a tiny shared
object compiled here with cc and handed to revl.Model.from_c; the numpy version does the same
arithmetic elementwise, so the two give bit-identical hypergradients (checked).

    python3 bench/python_callback_overhead.py [--P 100] [--T 1000] [--repeat 5]
"""
import argparse
import ctypes
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))
import numpy as np  # noqa: E402

import revl  # noqa: E402

C_SOURCE = r"""
#include <stddef.h>
typedef struct { size_t n; const double *a; const double *c; } quad;

static void grad_of(const quad *q, size_t step, const double *w, double *g, double *loss)
{
    const double *c = q->c + step * q->n;
    double l = 0;
    for (size_t i = 0; i < q->n; i++) {
        double d = w[i] - c[i];
        g[i] = q->a[i] * d;
        l += 0.5 * q->a[i] * d * d;
    }
    if (loss)
        *loss = l;
}

int quad_grad(size_t step, const double *w, const double *meta, double *g, double *loss,
              void *user)
{
    (void)meta;
    grad_of(user, step, w, g, loss);
    return 0;
}

int quad_hvp(size_t step, const double *w, const double *meta, const double *v, double *g,
             double *hv, double *hv_meta, void *user)
{
    const quad *q = user;
    (void)meta; (void)hv_meta;
    for (size_t i = 0; i < q->n; i++)
        hv[i] = q->a[i] * v[i];
    if (g)
        grad_of(q, step, w, g, NULL);
    return 0;
}
"""


class Quad(ctypes.Structure):
    _fields_ = [("n", ctypes.c_size_t), ("a", ctypes.c_void_p), ("c", ctypes.c_void_p)]


def build_c_model(tmp, P, a, c, fused):
    src = pathlib.Path(tmp) / "quad.c"
    so = pathlib.Path(tmp) / "quad.so"
    src.write_text(C_SOURCE)
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    dll = ctypes.CDLL(str(so))
    q = Quad(P, a.ctypes.data, c.ctypes.data)
    return revl.Model.from_c(P, 0, dll.quad_grad, dll.quad_hvp, ctypes.addressof(q),
                             hvp_gives_grad=fused, keepalive=(dll, q, a, c))


def numpy_model(P, a, c, fused):
    def grad(step, w, meta):
        d = w - c[step]
        return 0.5 * float(a @ (d * d)), a * d

    if fused:
        def hvp(step, w, meta, v):
            return a * v, None, a * (w - c[step])
    else:
        def hvp(step, w, meta, v):
            return a * v, None
    return revl.Model(P, grad=grad, hvp=hvp, hvp_gives_grad=fused)


def noop_model(P, fused):
    g = np.zeros(P)

    def grad(step, w, meta):
        return 0.0, g

    def hvp(step, w, meta, v):
        return (g, None, g) if fused else (g, None)
    return revl.Model(P, grad=grad, hvp=hvp, hvp_gives_grad=fused)


def time_run(model, T, w0, dfdw, repeat):
    s = revl.Schedule(T, [0, model.n_params], alpha=0.05, gamma=0.875)
    t = revl.Trainer(model, s, threads=1)
    best, hg = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        t.train(w0)
        hg = t.hypergrad(dfdw)
        best = min(best, time.perf_counter() - t0)
    return best, hg


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--P", type=int, default=100)
    ap.add_argument("--T", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    P, T = args.P, args.T
    rng = np.random.default_rng(0)
    a = np.ascontiguousarray(rng.uniform(0.5, 2.0, P))
    c = np.ascontiguousarray(rng.normal(size=(T, P)) * 0.1)
    w0, dfdw = rng.normal(size=P) * 0.5, rng.normal(size=P)
    print(f"revl {revl.version()} ({revl.library_path}); P = {P}, T = {T}, best of {args.repeat}; "
          f"train + hypergrad, 1 trainer thread")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fused in (False, True):
            calls = 2 if fused else 3
            tag = "fused hvp+grad" if fused else "separate grad, hvp"
            tc, hgc = time_run(build_c_model(tmp, P, a, c, fused), T, w0, dfdw, args.repeat)
            tp, hgp = time_run(numpy_model(P, a, c, fused), T, w0, dfdw, args.repeat)
            tn, _ = time_run(noop_model(P, fused), T, w0, dfdw, args.repeat)
            same = (np.array_equal(hgc.w0, hgp.w0) and np.array_equal(hgc.alpha, hgp.alpha)
                    and np.array_equal(hgc.gamma, hgp.gamma))
            print(f"[{tag}, {calls} callbacks/step]")
            print(f"  C model          {tc * 1e3:8.2f} ms  {tc / T * 1e6:7.2f} us/step")
            print(f"  numpy model      {tp * 1e3:8.2f} ms  {tp / T * 1e6:7.2f} us/step   "
                  f"overhead {(tp - tc) / T * 1e6:6.2f} us/step, "
                  f"{(tp - tc) / T / calls * 1e6:5.2f} us/callback, {tp / tc:5.1f}x")
            print(f"  no-op Python cb  {tn * 1e3:8.2f} ms  {tn / T * 1e6:7.2f} us/step   "
                  f"(trampoline alone: {(tn - tc) / T / calls * 1e6:5.2f} us/callback)")
            print(f"  hypergradients C == numpy bit for bit: {same}")
            results[fused] = (tc, tp, tn, same)
    if not all(r[3] for r in results.values()):
        print("MISMATCH between the C and the numpy model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
