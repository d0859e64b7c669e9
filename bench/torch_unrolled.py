#!/usr/bin/env python3
"""revl's built-in MLP against PyTorch's unrolled reverse mode on the same work (issue 13, 5).

The paper's network 784-50-50-50-10 tanh on 10,000 Fashion-MNIST images, batch 200, per-layer
L2 (exp(meta[l])/2 |W_l, b_l|^2), momentum SGD (alpha 0.3, gamma 0.9) and Adam (alpha 0.003,
beta1 0.9, beta2 0.999, eps 1e-8) in float64 on one thread, the hypergradient of the mean
validation cross-entropy (10,000 further images) with respect to every step's hyperparameters
per group, w0 and the 4 log L2.  Three ways, in this run:

  revl MLP      revl.MLP (gradient and HVP in C), exact reversal: O(P) memory
  revl bridge   the same network as a torch module through revl.torch (one torch
                forward/double backward per reverse step), exact reversal
  torch         the training unrolled on the autograd tape and differentiated in reverse
                mode (what higher / TorchOpt / differentiable optimisers do): memory grows
                with T

The torch module uses revl's parameter layout and revl's minibatch order, so all three compute
the same hypergradient; the table gives their largest difference relative to the largest entry.
Time is train + validation gradient + hypergradient; memory is the resident-set peak above the
resident set before the call (process-wide, so it includes allocator slack).

    python3 bench/torch_unrolled.py              # T = 100 and 1000
    python3 bench/torch_unrolled.py --quick      # small data, T = 10 and 20 (seconds)
"""
import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import sys  # noqa: E402

# torch_util also puts python/ on sys.path
import torch_util  # noqa: E402

torch_util.require_torch("torch_unrolled")
from torch_util import OPTIMIZERS, save_one, schedule, table, unrolled  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import revl  # noqa: E402
import revl.torch  # noqa: E402

F = torch.nn.functional
MASK = 2**64 - 1
WIDTHS = (784, 50, 50, 50, 10)


def splitmix(state):
    """revl's rv_rand_u64: (new state, value)."""
    state = (state + 0x9e3779b97f4a7c15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK
    return state, z ^ (z >> 31)


def revl_perm(seed, epoch, n):
    """The permutation revl's MLP uses in epoch ``epoch`` (src/models/mlp_batch.c)."""
    _, mix = splitmix(epoch)
    state, perm = seed ^ mix, list(range(n))
    for i in range(n - 1, 0, -1):
        state, r = splitmix(state)
        j = r % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return torch.tensor(perm)


class RevlBatches:
    """batch(step) with revl's MLP order: epoch permutation, then consecutive runs."""

    def __init__(self, x, y, batch, seed):
        self.x, self.y, self.batch, self.seed = x, y, batch, seed
        self.n_batches = x.shape[0] // batch
        self.epoch, self.perm = None, None

    def __call__(self, step):
        epoch, k = divmod(step, self.n_batches)
        if epoch != self.epoch:
            self.epoch, self.perm = epoch, revl_perm(self.seed, epoch, self.x.shape[0])
        idx = self.perm[k * self.batch:(k + 1) * self.batch]
        return self.x[idx], self.y[idx]


class RevlLayoutMLP(torch.nn.Module):
    """tanh MLP with revl's layout: W_l (in, out) row-major then b_l, layer after layer."""

    def __init__(self, widths):
        super().__init__()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            setattr(self, f"W{i}", torch.nn.Parameter(torch.zeros(a, b, dtype=torch.float64)))
            setattr(self, f"b{i}", torch.nn.Parameter(torch.zeros(b, dtype=torch.float64)))
        self.n_layers = len(widths) - 1

    def forward(self, x):
        for i in range(self.n_layers):
            x = x @ getattr(self, f"W{i}") + getattr(self, f"b{i}")
            if i + 1 < self.n_layers:
                x = torch.tanh(x)
        return x


def per_layer_l2(params, meta):
    return sum(0.5 * torch.exp(meta[i]) * ((params[f"W{i}"] ** 2).sum() +
                                          (params[f"b{i}"] ** 2).sum())
               for i in range(len(meta)))


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 / 1,000 images, T = 10, 20")
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-valid", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--max-torch-gib", type=float, default=12.0,
                    help="skip the unrolled run where its projected memory exceeds this "
                         "(12: Adam at T = 1000 needs about 10.2 GiB, within half of the "
                         "24 GiB machine the issue's comparison is made on)")
    ap.add_argument("--tolerance", type=float, default=1e-6,
                    help="largest relative hypergradient difference accepted")
    ap.add_argument("--optimizer", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    ap.add_argument("--one", nargs=3, metavar=("METHOD", "T", "FILE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.quick:
        a.n_train, a.n_valid, a.steps = 1000, 1000, [10, 20]
    return a


def setup(a):
    both = revl.Dataset.fashion_mnist("train", a.n_train + a.n_valid)
    train, valid = both.subset(0, a.n_train), both.subset(a.n_train, a.n_valid)
    mlp = revl.MLP(list(WIDTHS), train, activation="tanh", penalty="per_layer",
                   batch_size=a.batch, seed=0, threads=1)
    x, y = (torch.tensor(v) for v in train.to_numpy())
    xv, yv = (torch.tensor(v) for v in valid.to_numpy())
    y, yv = y.long(), yv.long()
    tm = revl.torch.TorchModel(RevlLayoutMLP(WIDTHS), F.cross_entropy,
                               batch=RevlBatches(x, y, a.batch, 0), n_meta=len(WIDTHS) - 1,
                               penalty=per_layer_l2, threads=1)
    assert tm.offsets == list(mlp.offsets), (tm.offsets, list(mlp.offsets))
    return mlp, valid, tm, xv, yv


def one(a, method, T, path):
    """One measurement, in its own process: train + validation gradient + hypergradient."""
    mlp, valid, tm, xv, yv = setup(a)
    w0 = mlp.init_weights(-3.0, seed=1)
    meta = np.full(mlp.n_meta, -5.0)
    s = schedule(mlp, T, a.optimizer[0])

    def run_revl(model, objective):
        t = revl.Trainer(model, s)
        t.train(w0, meta)
        return t.hypergrad(objective(t.weights))

    if method == "mlp":
        fn = lambda: run_revl(mlp, lambda w: mlp.evaluate(valid, w, grad=True).grad)  # noqa
    elif method == "bridge":
        fn = lambda: run_revl(tm.model(), lambda w: tm.evaluate(w, xv, yv)[1])  # noqa
    else:
        fn = lambda: unrolled(tm, s, w0, meta, lambda w: tm.loss_on(w, xv, yv))  # noqa
    save_one(path, fn)


def main():
    a = parse()
    if a.one:
        return one(a, a.one[0], int(a.one[1]), a.one[2])
    print(f"MLP {'-'.join(map(str, WIDTHS))} tanh, P = 44860, batch {a.batch}, "
          f"{a.n_train} train / {a.n_valid} valid, per-layer L2, float64, 1 thread "
          f"(torch {torch.__version__}); each figure from its own process; time ratio and "
          f"memory: revl MLP / torch; differences: revl MLP, bridge")
    return table(__file__, sys.argv[1:], a.steps, [("mlp", "revl MLP"), ("bridge", "bridge")],
                 a.max_torch_gib, a.tolerance, a.optimizer,
                 targets={"time": {100: 0.4, 1000: 0.16}, "memory": 0.01})

if __name__ == "__main__":
    raise SystemExit(main())
