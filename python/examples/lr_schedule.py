#!/usr/bin/env python3
"""Learning-rate and momentum schedules by exact hypergradients, driven from Python.

The experiment of Maclaurin, Duvenaud & Adams (2015), section 3.1, on Fashion-MNIST: an MLP
784-50-50-50-10 (tanh) trained for T steps of momentum SGD on minibatches of 200; the
hyper-optimiser learns one alpha and one gamma per step per parameter group (4 layers x
weights/biases) and the log init scale of each group, by Adam on the hypergradient of the
validation loss.  Start: alpha = e^-1, gamma = 0.5, init scale e^-3.

One line per meta-iteration:  iteration, training loss of the last inner step, validation loss,
validation accuracy, hypergradient norm, meta step size, seconds.

    python3 python/examples/lr_schedule.py --quick      # a few seconds
    python3 python/examples/lr_schedule.py              # the paper's sizes (10k/10k, T=100, 50 it.)

--engine c runs the meta-loop in the library (revl.HyperOpt); --engine python runs it here
(Trainer + MLP.evaluate + Adam in numpy), which is also the fallback when the linked library has
no hyper-optimiser.
"""
import argparse
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402

import revl  # noqa: E402

GROUP_NAMES = ["W0", "b0", "W1", "b1", "W2", "b2", "W3", "b3"]


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1,000 train / 1,000 valid examples, T = 10, 5 meta-iterations")
    ap.add_argument("--data", default=revl.data.FASHION_MNIST_DIR,
                    help="directory of the Fashion-MNIST IDX files (default: %(default)s)")
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-valid", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=100, help="inner training steps T")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--iterations", type=int, default=50, help="meta-iterations")
    ap.add_argument("--step-size", type=float, default=0.04, help="Adam meta step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--engine", choices=["auto", "c", "python"], default="auto")
    ap.add_argument("--save", metavar="FILE", help="write the best hyperparameters here")
    a = ap.parse_args()
    if a.quick:
        a.n_train, a.n_valid, a.steps, a.iterations = 1000, 1000, 10, 5
    return a


def load(a):
    # the training examples come from the front of the 60,000-example file, the validation
    # examples from right after them
    images = os.path.join(a.data, "train-images-idx3-ubyte.gz")
    labels = os.path.join(a.data, "train-labels-idx1-ubyte.gz")
    if not os.path.exists(images):
        sys.exit(f"lr_schedule: no Fashion-MNIST at {a.data} (Debian package "
                 f"dataset-fashion-mnist, or --data DIR)")
    full = revl.Dataset.load_idx(images, labels, a.n_train + a.n_valid)
    return full.subset(0, a.n_train), full.subset(a.n_train, a.n_valid)


def line(r):
    acc = "   n/a" if np.isnan(r.valid_accuracy) else f"{100 * r.valid_accuracy:5.1f}%"
    print(f"{r.iteration:4d}  train {r.train_loss:8.4f}  valid {r.valid_loss:8.4f}  acc {acc}  "
          f"|hypergrad| {r.hypergrad_norm:10.4g}  step {r.step_size:.4f}  {r.seconds:6.2f} s"
          + ("  (chaos guard)" if r.chaos else ""), flush=True)


def run_c(model, valid, a):
    h = revl.HyperOpt(model, valid, a.steps, learn=["alpha", "gamma", "init_scale"],
                      method="adam", step_size=a.step_size, iterations=a.iterations,
                      seed=a.seed, threads=a.threads, report=line)
    h.run()
    if a.save:
        h.save(a.save, best=True)
    return h.get(best=True)


class Adam:
    def __init__(self, size, step, b1=0.9, b2=0.999, eps=1e-8):
        self.m, self.v, self.t = np.zeros(size), np.zeros(size), 0
        self.step, self.b1, self.b2, self.eps = step, b1, b2, eps

    def update(self, x, g):
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        mh = self.m / (1 - self.b1 ** self.t)
        vh = self.v / (1 - self.b2 ** self.t)
        return x - self.step * mh / (np.sqrt(vh) + self.eps)


def run_python(model, valid, a):
    """The same meta-loop as revl_hyperopt_run, written against the Python API."""
    T, G = a.steps, model.n_groups
    sched = revl.Schedule.for_model(model, T)
    trainer = revl.Trainer(model, sched, threads=a.threads)
    log_alpha = np.full((T, G), -1.0)
    logit_gamma = np.zeros((T, G))              # gamma = 0.5
    log_scale = np.full(G, -3.0)
    x = np.concatenate([log_alpha.ravel(), logit_gamma.ravel(), log_scale])
    adam = Adam(x.size, a.step_size)
    best = (np.inf, None)
    q = 2.0 ** -16
    for it in range(a.iterations):
        t0 = time.perf_counter()
        log_alpha = x[:T * G].reshape(T, G)
        logit_gamma = x[T * G:2 * T * G].reshape(T, G)
        log_scale = x[2 * T * G:]
        alpha = np.exp(log_alpha)
        gamma = np.clip(1 / (1 + np.exp(-logit_gamma)), q, 1 - q)
        sched.set(alpha, gamma)
        w0 = model.init_weights(log_scale, seed=a.seed)
        trainer.train(w0)
        ev = model.evaluate(valid, trainer.weights, grad=True)
        hg = trainer.hypergrad(ev.grad)
        g = np.concatenate([(alpha * hg.alpha).ravel(),
                            (gamma * (1 - gamma) * hg.gamma).ravel(),
                            model.init_scales_grad(w0, hg.w0)])
        if ev.loss < best[0]:
            best = (ev.loss, revl.Hyperparams(alpha, sched.gamma.copy(), log_scale.copy(),
                                              np.empty(0)))
        x = adam.update(x, g)
        line(revl.Report(it, trainer.stats["last_loss"], ev.loss, ev.accuracy,
                         float(np.linalg.norm(g)), a.step_size, time.perf_counter() - t0, False))
    if a.save:
        with open(a.save, "w") as f:
            f.write("# lr_schedule.py --engine python: best alpha, gamma (T x G), log init "
                    "scales (G)\n")
            np.savetxt(f, best[1].alpha, header="alpha")
            np.savetxt(f, best[1].gamma, header="gamma")
            np.savetxt(f, best[1].log_init_scales[None], header="log_init_scales")
    return best[1]


def summary(p, T):
    print("\nlearned (best iteration): mean alpha per group in the first, middle and last "
          "tenth of the steps; init scale")
    k = max(1, T // 10)
    for g in range(p.alpha.shape[1]):
        a = p.alpha[:, g]
        print(f"  {GROUP_NAMES[g] if g < len(GROUP_NAMES) else g:>3}: alpha "
              f"{a[:k].mean():7.4f} {a[T // 2 - k // 2:T // 2 + (k + 1) // 2].mean():7.4f} "
              f"{a[-k:].mean():7.4f}   gamma {p.gamma[:, g].mean():6.3f}   "
              f"init scale {np.exp(p.log_init_scales[g]):.4f}")
    print(f"  (1/sqrt(784) = {1 / np.sqrt(784):.4f})")


def main():
    a = parse()
    engine = a.engine
    if engine == "auto":
        engine = "c" if revl.available("hyperopt_create") else "python"
    if engine == "c" and not revl.available("hyperopt_create"):
        sys.exit("lr_schedule: the linked librevl has no hyper-optimiser; use --engine python")
    t0 = time.perf_counter()
    train, valid = load(a)
    model = revl.MLP([784, 50, 50, 50, 10], train, activation="tanh", batch_size=a.batch,
                     seed=a.seed, threads=a.threads)
    print(f"revl {revl.version()}: Fashion-MNIST {train.n} train / {valid.n} valid, MLP "
          f"784-50-50-50-10 ({model.n_params} parameters, {model.n_groups} groups), T = "
          f"{a.steps}, batch {a.batch}, {a.iterations} meta-iterations, engine {engine}",
          flush=True)
    best = (run_c if engine == "c" else run_python)(model, valid, a)
    summary(best, a.steps)
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
