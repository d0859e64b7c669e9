#!/usr/bin/env python3
"""A small PyTorch ResNet with batch norm on Fashion-MNIST whose per-layer learning-rate and
weight-decay schedules revl's hyper-optimiser learns.

The network is plain PyTorch (a stride-2 stem, three residual blocks of two 3x3 convolutions
with batch norm, 16, 32 and 64 channels, global average pooling, a linear layer: 77k
parameters, float32, one thread), trained for T = 500 steps of AdamW (torch.optim.AdamW's
update: decoupled weight decay, then Adam's step) on minibatches of 32.  revl.torch turns it
into a revl.Model with one group per layer (stem, block1, block2, block3, fc); revl.HyperOpt
learns one learning rate and one weight decay per step and group from the exact hypergradient
of the validation loss, in memory that does not grow with T.  The batch norms train on batch
statistics and their running statistics follow the training steps, as in PyTorch: the
validation and test losses are those of module.eval().

--optimizer adam (or momentum) is the same run with that optimiser: HyperOpt and
unrolled_hypergrad take the name, and the kinds the optimiser lacks (weight decay) are not
learned.

One line per meta-iteration: iteration, last training loss, validation loss and accuracy,
|hypergradient|, seconds.  At the end: validation and test accuracy before (the first
schedule) and after (the best), and the memory of a meta-iteration against what unrolled
PyTorch needs for the same training (measured at a few steps, projected to T).  Writes
schedule.dat (learning rates), weight_decay.dat (AdamW), curve.dat, torch_resnet.gp and, with
gnuplot, schedule.png, weight_decay.png and curve.png into --out.

    python3 python/examples/torch_resnet.py --quick    # seconds
    python3 python/examples/torch_resnet.py            # 10k train / 5k valid, T = 500
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
from torch_cnn import images  # noqa: E402

F = torch.nn.functional
GROUPS = ["stem.", "block1.", "block2.", "block3.", "fc."]


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="256 train / 256 valid / 500 test, T = 10, batch 16, 2 meta-iterations")
    ap.add_argument("--data", default=revl.data.FASHION_MNIST_DIR)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-valid", type=int, default=5000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=500, help="inner training steps T")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=10, help="meta-iterations")
    ap.add_argument("--optimizer", default="adamw", choices=["adamw", "adam", "momentum"],
                    help="the inner optimiser (adamw: learning rate and weight decay learned)")
    ap.add_argument("--alpha", type=float, default=0.003, help="initial learning rate")
    ap.add_argument("--weight-decay", type=float, default=0.01,
                    help="initial weight decay (AdamW; torch.optim.AdamW's default)")
    ap.add_argument("--step-size", type=float, default=0.1,
                    help="the hyper-optimiser's step on log alpha and log weight decay")
    ap.add_argument("--torch-steps", type=int, default=20,
                    help="steps of the unrolled PyTorch run whose memory is measured")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/torch_resnet")
    a = ap.parse_args()
    quick = dict(n_train=256, n_valid=256, n_test=500, steps=10, batch=16, iterations=2,
                 torch_steps=5)
    for k, v in quick.items():         # --quick changes the sizes not given explicitly
        if a.quick and getattr(a, k) == ap.get_default(k):
            setattr(a, k, v)
    return a


class Norm(torch.nn.Module):
    """Batch norm with the affine part as x (1 + gain) + shift: gain and shift start near 0,
    which the library's Gaussian w0 gives (BatchNorm2d's own weight would start near 0)."""

    def __init__(self, c):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(c, affine=False)
        self.gain = torch.nn.Parameter(torch.zeros(c, 1, 1))
        self.shift = torch.nn.Parameter(torch.zeros(c, 1, 1))

    def forward(self, x):
        return self.bn(x) * (1 + self.gain) + self.shift


class Block(torch.nn.Module):
    """x + conv-bn-relu-conv-bn (a 1x1 conv with stride where the shape changes), then relu."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = Norm(c_out)
        self.conv2 = torch.nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = Norm(c_out)
        self.skip = None
        if stride != 1 or c_in != c_out:
            self.skip = torch.nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.skip is None else self.skip(x)))


class ResNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, 2, 1, bias=False),  # 14x14
                                        Norm(16), torch.nn.ReLU())
        self.block1 = Block(16, 16, 1)          # 14x14
        self.block2 = Block(16, 32, 2)          # 7x7
        self.block3 = Block(32, 64, 2)          # 4x4
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        h = self.block3(self.block2(self.block1(self.stem(x))))
        return self.fc(h.mean((2, 3)))


def peak_mib(fn):
    """(fn(), peak resident set during fn above the one before, MiB; Linux)"""
    def kib(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                   # VmHWM := VmRSS
    base = kib("VmRSS")
    out = fn()
    return out, max(0, kib("VmHWM") - base) / 1024


def accuracy(tm, w, x, y):
    with torch.no_grad():
        return float((tm.outputs(torch.tensor(w), x).argmax(1) == y).double().mean())


def write_schedule(path, kind, names, values):
    with open(path, "w") as f:
        f.write("# step " + " ".join(f"{kind}[{n}]" for n in names) + "\n")
        for t, row in enumerate(values):
            f.write(f"{t} " + " ".join(f"{x:.6g}" for x in row) + "\n")


def write_outputs(out, names, best, curve):
    os.makedirs(out, exist_ok=True)
    write_schedule(os.path.join(out, "schedule.dat"), "alpha", names, best.alpha)
    if best.weight_decay is not None:
        write_schedule(os.path.join(out, "weight_decay.dat"), "weight_decay", names,
                       best.weight_decay)
    with open(os.path.join(out, "curve.dat"), "w") as f:
        f.write("# iteration train_loss valid_loss valid_accuracy |hypergrad| seconds\n")
        for row in curve:
            f.write(" ".join(f"{x:.6g}" for x in row) + "\n")

    def cols(dat):
        return ", ".join(f"'{dat}' using 1:{i + 2} with lines title '{n}'"
                         for i, n in enumerate(names))
    decay = "" if best.weight_decay is None else (
        "set ylabel 'weight decay'\nset output 'weight_decay.png'\n"
        f"set title 'learned weight-decay schedule per layer'\nplot {cols('weight_decay.dat')}\n")
    with open(os.path.join(out, "torch_resnet.gp"), "w") as f:
        f.write("set terminal pngcairo size 800,500\nset key outside\nset xlabel 'step'\n"
                "set ylabel 'learning rate'\nset logscale y\nset output 'schedule.png'\n"
                "set title 'learned learning-rate schedule per layer'\n"
                f"plot {cols('schedule.dat')}\n" + decay +
                "unset logscale y\nset xlabel 'meta-iteration'\nset ylabel 'validation loss'\n"
                "set output 'curve.png'\nset title 'meta-learning curve'\n"
                "plot 'curve.dat' using 1:3 with linespoints title 'validation loss'\n")
    if shutil.which("gnuplot"):
        r = subprocess.run(["gnuplot", "torch_resnet.gp"], cwd=out, capture_output=True,
                           text=True)
        pngs = ["schedule"] + ([] if best.weight_decay is None else ["weight_decay"]) + ["curve"]
        print("plots: " + (", ".join(f"{out}/{p}.png" for p in pngs) if r.returncode == 0
                           else f"gnuplot failed: {r.stderr.strip()}"))
    else:
        print(f"gnuplot not found: data and script in {out}")


def main():
    a = parse()
    torch.manual_seed(a.seed)
    net = ResNet()
    x, y = images("train", 0, a.n_train, a.data)
    xv, yv = images("train", a.n_train, a.n_valid, a.data)
    xt, yt = images("test", 0, a.n_test, a.data)
    tm = revl.torch.TorchModel(net, F.cross_entropy, (x, y), batch_size=a.batch, seed=a.seed,
                               groups=GROUPS, threads=1)
    model = tm.model()
    T = a.steps
    print(f"torch_resnet: P = {tm.n_params} parameters in {model.n_groups} layers "
          f"{tm.group_names}, {len(tm.stats_names) // 3} batch norms, T = {T} steps of "
          f"{a.optimizer}, batch {a.batch}, {a.n_train} train / {a.n_valid} valid / "
          f"{a.n_test} test, float32")
    seen = []                          # (valid loss, w_T, running statistics) of each run

    def objective(w, meta):
        f, dfdw = tm.evaluate(w, xv, yv)
        seen.append((f, np.array(w), tm.running_stats()))
        return f, dfdw, None

    # log alpha and log weight decay per step and layer (an optimiser without weight decay
    # ignores that learn bit)
    h = revl.HyperOpt(model, None, T, optimizer=a.optimizer, learn=["alpha", "weight_decay"],
                      objective=objective, step_size=a.step_size, seed=a.seed)
    # w0: the library's Gaussian per group; the convolutions feed batch norms (their scale
    # does not matter), the batch norms' gains and shifts start near 0 (Norm)
    h.set(alpha=a.alpha, log_init_scales=np.log(0.05),
          weight_decay=a.weight_decay if "weight_decay" in h.kinds else None)
    curve, mib = [], None
    for it in range(a.iterations):
        if mib is None:
            r, mib = peak_mib(h.step)
        else:
            r = h.step()
        acc = accuracy(tm, seen[-1][1], xv, yv)
        curve.append([it, r.train_loss, r.valid_loss, acc, r.hypergrad_norm, r.seconds])
        print(f"it {it:3d}  train {r.train_loss:.4f}  valid {r.valid_loss:.4f}  acc {acc:.3f}  "
              f"|hypergrad| {r.hypergrad_norm:.3g}  {r.seconds:.1f} s", flush=True)

    first = seen[0]
    best = min(seen, key=lambda s: s[0])

    def test_acc(run):
        with tm.holding_stats(run[2]):
            return accuracy(tm, run[1], xv, yv), accuracy(tm, run[1], xt, yt)
    (v0, t0), (v1, t1) = test_acc(first), test_acc(best)
    print(f"validation loss {first[0]:.4f} -> {best[0]:.4f}, validation accuracy {v0:.3f} -> "
          f"{v1:.3f}, test accuracy {t0:.3f} -> {t1:.3f}")

    hb = h.get(best=True)
    for kind in ("alpha", "weight_decay"):
        if getattr(hb, kind) is not None:
            print(f"best {kind} per layer (mean over steps): " + ", ".join(
                f"{n} {v:.3g}" for n, v in zip(tm.group_names, getattr(hb, kind).mean(0))))

    # unrolled PyTorch on the same training: the tape grows with every step; measured at two
    # lengths, projected linearly (the validation gradient's working set is in both)
    s = h.get()
    w0 = model.init_weights(s.log_init_scales, a.seed)
    t_start = time.perf_counter()
    Ts = sorted({max(1, min(T, a.torch_steps) // 2), min(T, a.torch_steps)})
    torch_mib = [peak_mib(lambda: revl.torch.unrolled_hypergrad(
        tm, w0=w0, optimizer=a.optimizer, objective=lambda w: tm.loss_on(w, xv, yv),
        **{k: getattr(s, k)[:Tm] for k in h.kinds}))[1] for Tm in Ts]
    per_step = (torch_mib[-1] - torch_mib[0]) / max(1, Ts[-1] - Ts[0])
    print(f"memory of a meta-iteration (train, validation gradient on {a.n_valid} images, "
          f"hypergradient): revl {mib:.0f} MiB, flat in T; unrolled PyTorch "
          + ", ".join(f"{m:.0f} MiB at T = {t}" for m, t in zip(torch_mib, Ts))
          + f" (measured, {time.perf_counter() - t_start:.1f} s)"
          + ("" if Ts[-1] == T else f", {per_step:.1f} MiB per step: "
             f"{torch_mib[-1] + per_step * (T - Ts[-1]):.0f} MiB at T = {T} (projected)"))
    write_outputs(a.out, tm.group_names, hb, curve)
    ok = best[0] <= first[0] and np.isfinite(best[0])
    print(f"RESULT: {'ok' if ok else 'FAILED'} validation loss {first[0]:.4f} -> "
          f"{best[0]:.4f}, test accuracy {t0:.3f} -> {t1:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
