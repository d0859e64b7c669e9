#!/usr/bin/env python3
"""revl's default tuner (revl.tune) against Optuna TPE and random search at equal CPU time
(issue 20, item 7).

The setting of lr_schedule: MLP 784-50-50-50-10 tanh, 10,000 training + 10,000 validation
Fashion-MNIST images (the front of the training file), batch 200, T = 100 inner steps, test =
t10k; tasks: (a) momentum SGD, (b) Adam; (c) with --tasks cnn, python/examples/torch_cnn.py's
PyTorch CNN through revl.torch (5,000 + 5,000 images, batch 50, T = 200, log L2 -6 per layer).  Optuna (TPESampler) and random search cover the
8-parameter family: log learning rate, momentum (Adam: beta1), log init scale, a linear decay to
a final fraction and one log multiplier per layer; that is revl.Family(type='shape'), whose map
builds every trial's schedule, so all methods share the family code and its box.  Each trial is
one revl training (truncate = 1: no reversal kept) evaluated on the validation set; the best
trial by validation loss is evaluated on the test set.  revl's default gets the same budget.

Budgets are CPU seconds of this process (time.process_time(), one thread: the machine may be
shared): 1x and 3x the time of 50 of today's meta-iterations (revl.HyperOpt, measured here on
each task, or --budget).  Seeds are the seeds of the minibatch order (and init noise, sampler).

    python3 bench/hpo_vs_blackbox.py            # the full bench (long: run it on a quiet machine)
    python3 bench/hpo_vs_blackbox.py --quick    # 1,000 + 1,000 images, T = 20, tiny budgets

Prints a table per task, whether revl's default beat Optuna's best at every budget, task and
seed (the issue's target), and writes best validation loss against seconds to
out/bench_hpo/<task>.png (gnuplot) with the data beside it.
"""
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"       # before numpy and librevl load: one thread, CPU time = work

import argparse  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
import numpy as np  # noqa: E402

import revl  # noqa: E402

TASKS = {"momentum": "(a) momentum MLP", "adam": "(b) Adam MLP",
         "cnn": "(c) PyTorch CNN (revl.torch), momentum"}
OPTIMIZER = {"momentum": "momentum", "adam": "adam", "cnn": "momentum"}
LEARN = {"momentum": ["alpha", "gamma", "init_scale"], "adam": ["alpha", "beta1", "init_scale"]}
CNN_LOG_L2 = -6.0     # torch_cnn.py's weight decay per layer, fixed for every method
KINDS = {"momentum": ("alpha", "gamma"), "adam": ("alpha", "beta1", "beta2", "eps")}
# z -> natural units, as the library's coordinates (src/hyperopt/coords.c)
LOGIT_FLOOR = {"gamma": 2.0 ** -16, "beta1": 2.0 ** -24, "beta2": 2.0 ** -24}
METHODS = ("revl", "optuna", "random")
DIVERGED = 1e3       # the loss told to Optuna for a diverged training (it takes no inf)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1,000 + 1,000 images, T = 20, 1 seed, budgets of 1 and 3 s")
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=["momentum", "adam"])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=float, default=0.0,
                    help="1x budget in CPU seconds (default: 50 of today's meta-iterations, "
                         "measured on each task)")
    ap.add_argument("--multipliers", type=float, nargs="+", default=[1.0, 3.0])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-valid", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=100, help="inner steps T (the MLP)")
    ap.add_argument("--cnn-n", type=int, default=5000, help="CNN: training = validation images")
    ap.add_argument("--cnn-steps", type=int, default=200, help="CNN: inner steps T")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--data", default=revl.data.FASHION_MNIST_DIR)
    ap.add_argument("--out", default=str(ROOT / "out" / "bench_hpo"))
    a = ap.parse_args()
    if a.quick:
        a.n_train = a.n_valid = a.n_test = 1000
        a.steps, a.seeds = 20, a.seeds[:1]
        a.cnn_n, a.cnn_steps = 300, 10
        a.budget = a.budget or 1.0
    return a


def cpu():
    return time.process_time()


def load(a):
    d = a.data
    if not os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")):
        sys.exit(f"hpo_vs_blackbox: no Fashion-MNIST at {d} (Debian package "
                 f"dataset-fashion-mnist, or --data DIR)")
    full = revl.Dataset.fashion_mnist("train", a.n_train + a.n_valid, root=d)
    test = revl.Dataset.fashion_mnist("test", a.n_test, root=d)
    return full.subset(0, a.n_train), full.subset(a.n_train, a.n_valid), test


class Problem:
    """One task at one seed: the revl.Model, its validation and test evaluations (w -> loss;
    w -> (loss, accuracy)), what revl.Tuner and revl.HyperOpt need of the validation set
    (a Dataset, or an objective callback), and the fixed meta-parameters."""

    def __init__(self, model, steps, optimizer, n_layers, valid_loss, test_eval, tuner_kw,
                 meta=None):
        self.model, self.steps, self.optimizer, self.n_layers = model, steps, optimizer, n_layers
        self.valid_loss, self.test_eval, self.tuner_kw = valid_loss, test_eval, tuner_kw
        self.meta = np.zeros(model.n_meta) if meta is None else meta

    def family(self, type, **kw):
        """A family of this task with the fixed meta-parameters in its base point."""
        f = revl.Family(self.optimizer, self.steps, self.model.n_groups, self.model.n_meta,
                        type, **kw)
        if self.model.n_meta:
            z = f.base
            z[f.n_z - self.model.n_meta:] = self.meta
            f.base = z
        return f

    def tuner_families(self):
        """None, None (the tuner's defaults) unless meta-parameters need their fixed values."""
        if not self.model.n_meta:
            return None, None
        return self.family("shape", n_layers=self.n_layers), self.family("per_step")


def mlp_problem(a, data, task, seed):
    train, valid, test = data
    model = revl.MLP([784, 50, 50, 50, 10], train, activation="tanh", batch_size=a.batch,
                     seed=seed, threads=1)
    ev = lambda w: tuple(model.evaluate(test, w)[:2])  # noqa: E731
    return Problem(model, a.steps, OPTIMIZER[task], 4, lambda w: model.evaluate(valid, w).loss,
                   ev, dict(valid=valid, test=test))


def cnn_problem(a, data, seed):
    import torch
    import revl.torch
    sys.path.insert(0, str(ROOT / "python" / "examples"))
    from torch_cnn import CNN, WEIGHTS, images, net_logits, weight_decay
    n = a.cnn_n
    torch.manual_seed(seed)
    x, y = images("train", 0, n, a.data)
    xv, yv = images("train", n, n, a.data)
    xt, yt = images("test", 0, a.n_test, a.data)
    tm = revl.torch.TorchModel(CNN().double(), torch.nn.functional.cross_entropy, (x, y),
                               batch_size=50, seed=seed, n_meta=len(WEIGHTS),
                               penalty=weight_decay, threads=1)

    def test_eval(w):
        acc = float((net_logits(tm, w, xt).argmax(1) == yt).double().mean())
        return tm.evaluate(w, xt, yt)[0], acc

    def objective(w, meta):
        f, g = tm.evaluate(w, xv, yv)
        return f, g, None
    return Problem(tm.model(), a.cnn_steps, "momentum", 3, lambda w: tm.evaluate(w, xv, yv)[0],
                   test_eval, dict(objective=objective),
                   meta=np.full(len(WEIGHTS), CNN_LOG_L2))


def make_problem(a, data, task, seed):
    return cnn_problem(a, data, seed) if task == "cnn" else mlp_problem(a, data, task, seed)


def meta_iteration_seconds(p):
    """CPU seconds of one of today's meta-iterations (revl.HyperOpt as the demo runs it): the
    mean of two after a first one."""
    kw = dict(p.tuner_kw)
    kw.pop("test", None)
    h = revl.HyperOpt(p.model, kw.pop("valid", None), p.steps, optimizer=p.optimizer,
                      threads=1, **kw)
    if p.model.n_meta:
        h.set(meta=p.meta)
    h.step()
    t0 = cpu()
    h.step()
    h.step()
    s = (cpu() - t0) / 2
    h.close()
    return s


# ------------------------------------------------------------------ black-box trials
class Trials:
    """Trains the shape family's schedule at theta (forward only) and keeps the best point per
    budget: the best-so-far when each budget's time ran out (a run of the largest budget holds
    every smaller one's result, as a separate run of that budget would have)."""

    def __init__(self, p, seed):
        self.p, self.model, self.seed, self.optimizer = p, p.model, seed, p.optimizer
        # one alpha multiplier per layer (a weight tensor and its biases share one)
        self.family = p.family("shape", learn=LEARN[p.optimizer], shape="linear",
                               n_layers=p.n_layers)
        self.lo, self.hi = self.family.bounds
        self.names = self.family.coord_names
        self.sched = revl.Schedule.for_model(p.model, p.steps, optimizer=p.optimizer)
        self.trainer = revl.Trainer(p.model, self.sched, truncate=1, threads=1)
        self.T, self.G = p.steps, p.model.n_groups
        self.best = (math.inf, None)          # (valid loss, weights)
        self.evaluations = 0
        self.trace = []                       # (seconds, best valid loss)
        self.t0 = cpu()

    def evaluate(self, theta):
        z = self.family.map(np.asarray(theta, dtype=float))
        block = self.T * self.G
        values = {}
        for i, kind in enumerate(KINDS[self.optimizer]):
            zk = z[i * block:(i + 1) * block].reshape(self.T, self.G)
            if kind in LOGIT_FLOOR:
                lo = LOGIT_FLOOR[kind]
                values[kind] = np.clip(1.0 / (1.0 + np.exp(-zk)), lo, 1.0 - lo)
            else:
                values[kind] = np.exp(np.clip(zk, -700.0, 700.0))
        n_kinds = len(KINDS[self.optimizer])
        scales = z[n_kinds * block:n_kinds * block + self.G]
        meta = z[n_kinds * block + self.G:]
        self.evaluations += 1
        try:
            self.sched.set(**values)
            w0 = self.model.init_weights(scales, seed=self.seed)
            self.trainer.train(w0, meta if meta.size else None)
            w = self.trainer.weights
            loss = self.p.valid_loss(w)
        except revl.Error:        # weights left the fixed-point range: diverged
            loss, w = math.inf, None
        if not math.isfinite(loss):
            loss = math.inf
        if loss < self.best[0]:
            self.best = (loss, w)
        self.trace.append((cpu() - self.t0, self.best[0]))
        return loss

    def result(self):
        loss, w = self.best
        if w is None:
            return dict(valid_loss=math.inf, test_loss=math.inf, test_accuracy=math.nan,
                        evaluations=self.evaluations)
        test_loss, test_accuracy = self.p.test_eval(w)
        return dict(valid_loss=loss, test_loss=test_loss, test_accuracy=test_accuracy,
                    evaluations=self.evaluations)


def run_blackbox(method, p, seed, budgets):
    """Random search or Optuna TPE until the largest budget; a result per budget."""
    tr = Trials(p, seed)
    if method == "optuna":
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))

        def trial_once():
            trial = study.ask()
            theta = [trial.suggest_float(f"x{i}", lo, hi)
                     for i, (lo, hi) in enumerate(zip(tr.lo, tr.hi))]
            loss = tr.evaluate(theta)
            study.tell(trial, loss if math.isfinite(loss) else DIVERGED)
    else:
        rng = np.random.default_rng(seed)

        def trial_once():
            tr.evaluate(rng.uniform(tr.lo, tr.hi))
    results = {}
    for b in sorted(budgets):
        while cpu() - tr.t0 < b:
            trial_once()
        results[b] = tr.result()
    return results, tr.trace


# ------------------------------------------------------------------ revl's default
def run_revl(p, seed, budget):
    """revl.Tuner with its defaults and a budget of CPU seconds of this process (cpu_time)."""
    trace, t0 = [], cpu()

    def report(r):
        trace.append((cpu() - t0, r.best_loss))

    opts = dict(p.tuner_kw, budget_seconds=budget, cpu_time=True, seed=seed, threads=1,
                report=report)
    search, refine = p.tuner_families()
    t = revl.Tuner(p.model, opts.pop("valid", None), p.steps, p.optimizer, search, refine, **opts)
    t.run()
    r = t.result()
    test_loss, test_accuracy = r.test_loss, r.test_accuracy
    if "test" not in p.tuner_kw:                 # a callback model: evaluated here
        test_loss, test_accuracy = p.test_eval(t.best_weights())
    t.close()
    return dict(valid_loss=r.valid_loss, test_loss=test_loss, test_accuracy=test_accuracy,
                evaluations=r.search_evaluations + r.refine_iterations), trace


# ------------------------------------------------------------------ output
def table(task, budgets, rows):
    print(f"\n{TASKS[task]}: test loss, test accuracy, validation loss, evaluations "
          f"(budget in CPU seconds, one thread)")
    print(f"{'method':<8} {'budget':>10} {'seed':>5} {'test loss':>10} {'test acc':>9} "
          f"{'valid loss':>11} {'evals':>6}")
    for method in METHODS:
        for b in budgets:
            got = [(s, r) for (m, bb, s), r in rows.items() if m == method and bb == b]
            if not got:
                continue
            for s, r in sorted(got, key=lambda x: x[0]):
                print(f"{method:<8} {b:>9.1f}s {s:>5} {r['test_loss']:>10.4f} "
                      f"{100 * r['test_accuracy']:>8.2f}% {r['valid_loss']:>11.4f} "
                      f"{r['evaluations']:>6}")
            mean = lambda k: float(np.mean([r[k] for _, r in got]))  # noqa: E731
            print(f"{method:<8} {b:>9.1f}s {'mean':>5} {mean('test_loss'):>10.4f} "
                  f"{100 * mean('test_accuracy'):>8.2f}% {mean('valid_loss'):>11.4f} "
                  f"{mean('evaluations'):>6.0f}")


def plot(out, task, traces):
    """Best validation loss against CPU seconds, one line per method (the first seed at the
    largest budget), with gnuplot when it is installed; the data files always."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for method, trace in traces.items():
        f = out / f"{task}_{method}.dat"
        f.write_text("# cpu_seconds best_valid_loss\n" + "".join(
            f"{s:.4f} {v:.6g}\n" for s, v in trace if math.isfinite(v)))
        files.append((method, f))
    if not shutil.which("gnuplot") or not files:
        print(f"(no gnuplot: data in {out})")
        return
    png = out / f"{task}.png"
    lines = ", ".join(f"'{f}' using 1:2 with steps lw 2 title '{m}'" for m, f in files)
    script = (f"set terminal pngcairo size 800,500 noenhanced\nset output '{png}'\n"
              f"set title '{TASKS[task]}: best validation loss against CPU seconds'\n"
              f"set xlabel 'CPU seconds (one thread)'\nset ylabel 'best validation loss'\n"
              f"set key top right\nplot {lines}\n")
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode:
        script = script.replace("pngcairo", "png")
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    print(f"plot: {png}" if r.returncode == 0 else f"gnuplot failed: {r.stderr.strip()}")


def main():
    a = parse()
    methods = list(a.methods)
    if "optuna" in methods:
        try:
            import optuna  # noqa: F401
        except ImportError:
            print("SKIPPED: python3-optuna missing (apt-get install python3-optuna): the Optuna "
                  "column is left out")
            methods.remove("optuna")
    print(f"revl {revl.version()}: Fashion-MNIST {a.n_train} train / {a.n_valid} valid / "
          f"{a.n_test} test, MLP 784-50-50-50-10 tanh, batch {a.batch}, T = {a.steps}, seeds "
          f"{a.seeds}, methods {', '.join(methods)}, tasks {', '.join(a.tasks)}", flush=True)
    out = pathlib.Path(a.out)
    verdicts = []
    data = load(a)
    for task in a.tasks:
        if a.budget:
            unit = a.budget
        else:
            unit = 50 * meta_iteration_seconds(make_problem(a, data, task, 0))
            print(f"{TASKS[task]}: 50 of today's meta-iterations take {unit:.1f} CPU s",
                  flush=True)
        budgets = [m * unit for m in a.multipliers]
        rows, traces = {}, {}
        for seed in a.seeds:
            for method in methods:
                if method == "revl":
                    for b in budgets:
                        p = make_problem(a, data, task, seed)
                        rows[method, b, seed], trace = run_revl(p, seed, b)
                        if seed == a.seeds[0] and b == max(budgets):
                            traces[method] = trace
                else:
                    res, trace = run_blackbox(method, make_problem(a, data, task, seed), seed,
                                              budgets)
                    for b, r in res.items():
                        rows[method, b, seed] = r
                    if seed == a.seeds[0]:
                        traces[method] = trace
                print(f"  {task} seed {seed} {method}: done", flush=True)
        table(task, budgets, rows)
        plot(out, task, traces)
        if "revl" in methods and "optuna" in methods and len(budgets) > 1:
            # the second target: revl at the smallest budget against Optuna at the
            # largest, in the mean over seeds
            mean = lambda m, b: float(np.mean([rows[m, b, s]["test_loss"]  # noqa: E731
                                               for s in a.seeds]))
            lo, hi = min(budgets), max(budgets)
            r1, o3 = mean("revl", lo), mean("optuna", hi)
            print(f"{TASKS[task]}: revl at {lo:.1f} s {r1:.4f} against Optuna at {hi:.1f} s "
                  f"{o3:.4f} (mean test loss): {'reached' if r1 <= o3 else 'NOT reached'}")
        if "revl" in methods and "optuna" in methods:
            for b in budgets:
                for seed in a.seeds:
                    verdicts.append((task, b, seed, rows["revl", b, seed]["test_loss"],
                                     rows["optuna", b, seed]["test_loss"]))
    if verdicts:
        lost = [v for v in verdicts if not v[3] < v[4]]
        if not lost:
            print(f"\nTARGET MET: revl's default beat Optuna's best test loss at every budget, "
                  f"task and seed ({len(verdicts)} comparisons)")
        else:
            print(f"\nTARGET NOT MET: revl's default lost to Optuna's best in {len(lost)} of "
                  f"{len(verdicts)} comparisons:")
            for task, b, seed, r, o in lost:
                print(f"  {task} budget {b:.1f} s seed {seed}: revl {r:.4f}, Optuna {o:.4f}")


if __name__ == "__main__":
    main()
