#!/usr/bin/env python3
"""A PyTorch CNN on Fashion-MNIST whose learning-rate schedules and weight decays revl learns.

The network is plain PyTorch (two conv layers with pooling, a linear layer, float64, one
thread), trained for T steps of momentum SGD (or Adam, --optimizer adam) on minibatches.  revl.torch turns it into a
revl.Model; the exact hypergradient of the validation loss gives one learning rate per step per
parameter tensor (6 tensors) and one log weight decay per layer (3), improved by Adam on
(log alpha, log L2).  Memory stays O(P): no training step is kept on an autograd tape.

One line per meta-iteration: iteration, last training loss, validation loss and accuracy,
|hypergradient|, seconds.  Writes schedule.dat, meta.dat, torch_cnn.gp and, with gnuplot,
schedule.png (the learned schedule) and meta.png (the meta-learning curve) into --out.

    python3 python/examples/torch_cnn.py --quick     # seconds
    python3 python/examples/torch_cnn.py             # 5k train / 5k valid, T = 200, 20 it.
    python3 python/examples/torch_cnn.py --optimizer adam   # the inner training is Adam
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import revl  # noqa: E402
import revl.torch  # noqa: E402

F = torch.nn.functional


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="500 train / 500 valid / 1,000 test, T = 20, 3 meta-iterations")
    ap.add_argument("--data", default=revl.data.FASHION_MNIST_DIR)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-valid", type=int, default=5000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=200, help="inner training steps T")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=20, help="meta-iterations")
    ap.add_argument("--meta-step", type=float, default=0.1, help="Adam step on log alpha, log L2")
    ap.add_argument("--optimizer", choices=("momentum", "adam"), default="momentum",
                    help="the inner training's optimiser")
    ap.add_argument("--alpha", type=float, default=None,
                    help="initial learning rate (momentum 0.2, Adam 0.01)")
    ap.add_argument("--gamma", type=float, default=0.9, help="momentum (fixed)")
    ap.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.999),
                    help="Adam's beta1, beta2 (fixed)")
    ap.add_argument("--log-l2", type=float, default=-6.0, help="initial log weight decay")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/torch_cnn")
    a = ap.parse_args()
    quick = dict(n_train=500, n_valid=500, n_test=1000, steps=20, iterations=3)
    for k, v in quick.items():         # --quick changes the sizes not given explicitly
        if a.quick and getattr(a, k) == ap.get_default(k):
            setattr(a, k, v)
    if a.alpha is None:
        a.alpha = 0.2 if a.optimizer == "momentum" else 0.01
    return a


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 4, 5)       # 28 -> 24, pool -> 12
        self.conv2 = torch.nn.Conv2d(4, 8, 5)       # 12 -> 8, pool -> 4
        self.fc = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.tanh(self.conv1(x)), 2)
        x = F.max_pool2d(torch.tanh(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


WEIGHTS = ["conv1.weight", "conv2.weight", "fc.weight"]


def weight_decay(params, log_l2):
    """exp(log_l2[l]) / 2 |W_l|^2 per layer: the meta-parameters revl differentiates through."""
    return sum(0.5 * torch.exp(log_l2[i]) * (params[n] ** 2).sum() for i, n in enumerate(WEIGHTS))


def images(split, first, n, root):
    d = revl.Dataset.fashion_mnist(split, first + n, root)
    x, y = d.to_numpy()
    return (torch.tensor(x[first:]).reshape(-1, 1, 28, 28),
            torch.tensor(y[first:].astype(np.int64)))


class Adam:
    def __init__(self, size, step, b1=0.9, b2=0.999, eps=1e-8):
        self.m, self.v, self.t = np.zeros(size), np.zeros(size), 0
        self.step, self.b1, self.b2, self.eps = step, b1, b2, eps

    def update(self, x, g):
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        mh, vh = self.m / (1 - self.b1 ** self.t), self.v / (1 - self.b2 ** self.t)
        return x - self.step * mh / (np.sqrt(vh) + self.eps)


def write_outputs(out, tm, log_alpha, curve):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "schedule.dat"), "w") as f:
        f.write("# step " + " ".join(f"alpha[{n}]" for n in tm.group_names) + "\n")
        for t, row in enumerate(np.exp(log_alpha)):
            f.write(f"{t} " + " ".join(f"{x:.6g}" for x in row) + "\n")
    with open(os.path.join(out, "meta.dat"), "w") as f:
        f.write("# iteration train_loss valid_loss valid_accuracy |hypergrad| seconds\n")
        for row in curve:
            f.write(" ".join(f"{x:.6g}" for x in row) + "\n")
    cols = ", ".join(f"'schedule.dat' using 1:{i + 2} with lines title '{n}'"
                     for i, n in enumerate(tm.group_names))
    gp = os.path.join(out, "torch_cnn.gp")
    with open(gp, "w") as f:
        f.write("set terminal pngcairo size 800,500\nset key outside\nset xlabel 'step'\n"
                "set ylabel 'learning rate'\nset logscale y\nset output 'schedule.png'\n"
                f"set title 'learned learning-rate schedule per tensor'\nplot {cols}\n"
                "unset logscale y\nset xlabel 'meta-iteration'\nset ylabel 'validation loss'\n"
                "set output 'meta.png'\nset title 'meta-learning curve'\n"
                "plot 'meta.dat' using 1:3 with linespoints title 'validation loss'\n")
    if shutil.which("gnuplot"):
        r = subprocess.run(["gnuplot", "torch_cnn.gp"], cwd=out, capture_output=True, text=True)
        print("plots: " + (f"{out}/schedule.png, {out}/meta.png" if r.returncode == 0
                           else f"gnuplot failed: {r.stderr.strip()}"))
    else:
        print(f"gnuplot not found: data and script in {out}")


def main():
    a = parse()
    torch.manual_seed(a.seed)
    net = CNN().double()
    x, y = images("train", 0, a.n_train, a.data)
    xv, yv = images("train", a.n_train, a.n_valid, a.data)
    xt, yt = images("test", 0, a.n_test, a.data)
    tm = revl.torch.TorchModel(net, F.cross_entropy, (x, y), batch_size=a.batch, seed=a.seed,
                               n_meta=len(WEIGHTS), penalty=weight_decay, threads=1)
    model = tm.model()
    T, G = a.steps, model.n_groups
    print(f"torch_cnn: P = {tm.n_params} parameters in {G} tensors {tm.group_names}, "
          f"T = {T} steps of {a.optimizer}, batch {a.batch}, {a.n_train} train / {a.n_valid} valid / {a.n_test} test")
    if a.optimizer == "adam":
        s = revl.Schedule.for_model(model, T, optimizer="adam", beta1=a.betas[0],
                                    beta2=a.betas[1])
    else:
        s = revl.Schedule.for_model(model, T, gamma=a.gamma)
    trainer = revl.Trainer(model, s)
    w0 = tm.read_params()
    log_alpha = np.full((T, G), np.log(a.alpha))
    log_l2 = np.full(len(WEIGHTS), a.log_l2)
    opt = Adam(log_alpha.size + log_l2.size, a.meta_step)
    curve, best, first = [], None, None
    for it in range(a.iterations + 1):
        t0 = time.time()
        s.alpha = np.exp(log_alpha)
        trainer.train(w0, log_l2)
        wT = trainer.weights
        f, dfdw = tm.evaluate(wT, xv, yv)
        acc = float((net_logits(tm, wT, xv).argmax(1) == yv).double().mean())
        if first is None:
            first = (f, wT)
        if best is None or f < best[0]:
            best = (f, wT, log_alpha.copy(), log_l2.copy())
        if it == a.iterations:         # the last evaluation needs no hypergradient
            curve.append([it, trainer.stats["last_loss"], f, acc, 0.0, time.time() - t0])
            break
        hg = trainer.hypergrad(dfdw)
        g = np.concatenate([(hg.alpha * s.alpha).ravel(), hg.meta])   # d/dlog alpha, d/dlog L2
        x_new = opt.update(np.concatenate([log_alpha.ravel(), log_l2]), g)
        log_alpha, log_l2 = x_new[:T * G].reshape(T, G), x_new[T * G:]
        curve.append([it, trainer.stats["last_loss"], f, acc, float(np.linalg.norm(g)),
                      time.time() - t0])
        print(f"it {it:3d}  train {curve[-1][1]:.4f}  valid {f:.4f}  acc {acc:.3f}  "
              f"|hypergrad| {curve[-1][4]:.3g}  {curve[-1][5]:.1f} s", flush=True)
    print(f"it {a.iterations:3d}  valid {curve[-1][2]:.4f}  acc {curve[-1][3]:.3f}")
    test_before = tm.evaluate(first[1], xt, yt)[0]
    test_after = tm.evaluate(best[1], xt, yt)[0]
    print(f"validation loss {first[0]:.4f} -> {best[0]:.4f}, test loss {test_before:.4f} -> "
          f"{test_after:.4f}; learned log L2 {np.round(best[3], 2).tolist()}; "
          f"trainer memory {trainer.stats['peak_bytes'] / 2**20:.2f} MiB")
    write_outputs(a.out, tm, best[2], curve)
    ok = best[0] <= first[0] and np.isfinite(best[0])
    print(f"RESULT: {'ok' if ok else 'FAILED'} validation loss {first[0]:.4f} -> {best[0]:.4f}")
    return 0 if ok else 1


def net_logits(tm, w, x):
    with torch.no_grad():
        return torch.nn.utils.stateless.functional_call(
            tm.module, tm.params_of(torch.tensor(w)), (x,))


if __name__ == "__main__":
    sys.exit(main())
