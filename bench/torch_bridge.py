#!/usr/bin/env python3
"""The PyTorch CNN of python/examples/torch_cnn.py: train + hypergradient through revl.torch
against PyTorch's unrolled reverse mode of the same training (issue 14, 3).

The same module (conv 1->4 5x5, tanh, pool, conv 4->8 5x5, tanh, pool, linear 128->10; float64,
one thread), the same minibatches (batch 50 of 5,000 Fashion-MNIST images), the same schedule
(momentum: alpha 0.2 per tensor per step, gamma 0.9; Adam: alpha 0.003, beta1 0.9, beta2 0.999,
eps 1e-8) and per-layer weight decay (log L2 = -6), the hypergradient of the validation
cross-entropy (1,000 images) with respect to every step's hyperparameters per tensor, w0 and
the 3 log L2.  Each figure comes from its own process: time is
train + validation gradient + hypergradient, memory the resident-set peak above the resident
set before the call.  Hypergradients must agree to the tolerance (default 1e-8, relative to the
largest entry of each).

    python3 bench/torch_bridge.py                 # T = 100, 300, 1000
    python3 bench/torch_bridge.py --quick         # T = 10, 20 on 500 images
"""
import argparse
import pathlib
import sys

# torch_util also puts python/ on sys.path
import torch_util  # noqa: E402

torch_util.require_torch("torch_bridge")
from torch_util import OPTIMIZERS, ROOT, save_one, schedule, table, unrolled  # noqa: E402

sys.path.insert(0, str(ROOT / "python" / "examples"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import revl  # noqa: E402
import revl.torch  # noqa: E402
from torch_cnn import CNN, WEIGHTS, images, weight_decay  # noqa: E402

F = torch.nn.functional
ALPHA = {"momentum": dict(alpha=0.2)}    # the example's momentum rate (Adam: OPTIMIZERS)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 / 200 images, T = 10, 20")
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-valid", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--max-torch-gib", type=float, default=6.0,
                    help="skip the unrolled run where its projected memory exceeds this")
    ap.add_argument("--tolerance", type=float, default=1e-8)
    ap.add_argument("--optimizer", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    ap.add_argument("--one", nargs=3, metavar=("METHOD", "T", "FILE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.quick:
        a.n_train, a.n_valid, a.steps = 500, 200, [10, 20]
    return a


def one(a, method, T, path):
    torch.manual_seed(0)
    x, y = images("train", 0, a.n_train, revl.data.FASHION_MNIST_DIR)
    xv, yv = images("train", a.n_train, a.n_valid, revl.data.FASHION_MNIST_DIR)
    tm = revl.torch.TorchModel(CNN().double(), F.cross_entropy, (x, y), batch_size=a.batch,
                               n_meta=len(WEIGHTS), penalty=weight_decay, threads=1)
    w0, meta = tm.read_params(), np.full(len(WEIGHTS), -6.0)
    s = schedule(tm.model(), T, a.optimizer[0], **ALPHA.get(a.optimizer[0], {}))

    def bridge():
        t = revl.Trainer(tm.model(), s)
        t.train(w0, meta)
        return t.hypergrad(tm.evaluate(t.weights, xv, yv)[1])

    def pytorch():
        return unrolled(tm, s, w0, meta, lambda w: tm.loss_on(w, xv, yv))

    save_one(path, bridge if method == "bridge" else pytorch)


def main():
    a = parse()
    if a.one:
        return one(a, a.one[0], int(a.one[1]), a.one[2])
    print(f"CNN of python/examples/torch_cnn.py (P = 2202, 6 tensors), batch {a.batch}, "
          f"{a.n_train} train / {a.n_valid} valid, float64, 1 thread (torch "
          f"{torch.__version__}); time ratio and memory: revl bridge / torch")
    return table(pathlib.Path(__file__), sys.argv[1:], a.steps, [("bridge", "revl bridge")],
                 a.max_torch_gib, a.tolerance, a.optimizer)


if __name__ == "__main__":
    raise SystemExit(main())
