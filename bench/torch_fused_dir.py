#!/usr/bin/env python3
"""RMSprop's reverse pass on a PyTorch model, with and without the fused gradient + direction
callback (revl_model_set_hvp_dir; issue 22, 4), and Adam's (fused by hvp_affine) for scale.

RMSprop's Hessian direction divides by sqrt(s_{t+1}), which holds g^2, so it is not affine in
the gradient: without hvp_dir each reverse step is a gradient call and then an hvp call (two
torch forward passes); with it the bridge hands g to the library for the direction and makes
the product from the same pass (one). The model is the CNN of python/examples/torch_cnn.py
(float64, one thread, batch 50, per-layer weight decay), T steps of torch's RMSprop settings
(lr 1e-3, alpha 0.99, momentum 0.9, eps 1e-8: revl's alpha, beta2, gamma, eps). Each repetition
times the three sides one after another (train + validation gradient + hypergradient); the
table shows the medians and the ratios of the medians, and checks that the fused and unfused
hypergradients are the same bits.

    python3 bench/torch_fused_dir.py               # T = 50, 5 repetitions
    python3 bench/torch_fused_dir.py --steps 20 --reps 3
"""
import argparse
import pathlib
import sys
import time

import torch_util  # noqa: E402  (puts python/ on sys.path)

torch_util.require_torch("torch_fused_dir")
from torch_util import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "python" / "examples"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import revl  # noqa: E402
import revl.torch  # noqa: E402
from torch_cnn import CNN, WEIGHTS, images, weight_decay  # noqa: E402

F = torch.nn.functional
RMSPROP = dict(alpha=1e-3, beta2=0.99, gamma=0.9, eps=1e-8)
ADAM = dict(alpha=0.003, beta1=0.9, beta2=0.999, eps=1e-8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=50)
    a = ap.parse_args()
    torch.manual_seed(0)
    x, y = images("train", 0, a.n_train, revl.data.FASHION_MNIST_DIR)
    xv, yv = images("train", a.n_train, 500, revl.data.FASHION_MNIST_DIR)
    tm = revl.torch.TorchModel(CNN().double(), F.cross_entropy, (x, y), batch_size=a.batch,
                               n_meta=len(WEIGHTS), penalty=weight_decay, threads=1)
    fused = tm.model()
    unfused = revl.Model(tm.n_params, tm.n_meta, tm.grad, tm.hvp, hvp_gives_grad=True,
                         groups=tm.offsets, hvp_affine=tm.hvp_affine)
    w0, meta = tm.read_params(), np.full(len(WEIGHTS), -6.0)
    sides = {"rmsprop fused": (fused, "rmsprop", RMSPROP),
             "rmsprop unfused": (unfused, "rmsprop", RMSPROP),
             "adam fused": (fused, "adam", ADAM)}
    times = {k: [] for k in sides}
    out = {}
    for _ in range(a.reps):
        for name, (m, opt, kw) in sides.items():
            s = revl.Schedule.for_model(m, a.steps, optimizer=opt, **kw)
            t0 = time.perf_counter()
            t = revl.Trainer(m, s)
            t.train(w0, meta)
            hg = t.hypergrad(tm.evaluate(t.weights, xv, yv)[1])
            times[name].append(time.perf_counter() - t0)
            out[name] = hg
    same = all(np.array_equal(getattr(out["rmsprop fused"], k), getattr(out["rmsprop unfused"], k))
               for k in ("w0", "meta") + out["rmsprop fused"].kinds)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"CNN of python/examples/torch_cnn.py (P = {tm.n_params}), batch {a.batch}, "
          f"{a.n_train} train, float64, 1 thread (torch {torch.__version__}), T = {a.steps}: "
          f"train + hypergradient, median of {a.reps} interleaved repetitions")
    print(f"{'side':>16} | {'median s':>9} {'min s':>8} {'max s':>8} | {'/ rms unfused':>13} "
          f"{'/ adam fused':>12}")
    for k in sides:
        print(f"{k:>16} | {med[k]:9.3f} {min(times[k]):8.3f} {max(times[k]):8.3f} | "
              f"{med[k] / med['rmsprop unfused']:13.2f} {med[k] / med['adam fused']:12.2f}")
    print(f"fused and unfused RMSprop hypergradients the same bits: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
