#!/usr/bin/env python3
"""make mutants: deliberate one-line bugs, each of which the tests must catch.

Each mutant replaces one exact piece of one source file (it must occur there exactly once, so a
mutant that no longer applies fails loudly instead of testing nothing). The tree is copied to
build-mutants/tree and mutated there, never in place, so an interrupted run leaves the checkout
as it was. For each mutant the copy is rebuilt and the test suites run in the order given (the
likeliest killer first) until one fails: the mutant is killed. A mutant that every suite passes
survived, and then this script fails. A mutant that does not compile counts as a failure of the
list, not a kill.

Scope (issue 11): base/, core/, exact/, optim/ (every optimiser), data/, models/, hyperopt/
and the Python binding.

    python3 tests/mutants.py [--list] [--only SUBSTRING] [--jobs N]
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORK = ROOT / "build-mutants"
TREE = WORK / "tree"

C_ALL = ["check_hardening", "check_errors", "check_mlp", "check_hyperopt", "check_dataset",
         "check_trainer", "check_infobuf", "check_update", "check_threads", "check_optim",
         "check_pinned", "check_wide", "check_adam_dir", "check_coder_vec"]
PY = "python"

# (file, original, mutated, suites to try first); every suite runs if those let it through.
MUTANTS = [
    # ---- optim/: an adjoint term dropped or mixed up, in each optimiser
    ("src/optim/adam.c", "o->r1[g] += -sg->alpha * sum[SLOT_C1] * sg->p1;",
     "o->r1[g] += -sg->alpha * sum[SLOT_C1] * sg->beta1;", ["check_optim"]),
    ("src/optim/adam.c", "p->dir_b[i] = -2.0 * sg->omb2 * o->ds[i];",
     "p->dir_b[i] = -sg->omb2 * o->ds[i];", ["check_optim"]),
    # ds scaled by beta1 (the adjoint run takes both betas from adam.c: lanes and plain alike)
    ("src/optim/adam.c", "const rv_adam_back back = {sg.beta1, sg.beta2,",
     "const rv_adam_back back = {sg.beta1, sg.beta1,", ["check_optim"]),
    ("src/optim/adam.c", "o->dm[i] -= sg->alpha * dw * t.du_dm[k];", "o->dm[i] -= dw * t.du_dm[k];",
     ["check_optim"]),
    # a moment failure recorded at once: reported before an earlier weight failure of its chunk
    ("src/optim/adam.c", "if (j == c1 || !adam_moments(&sg, NULL, j,",
     "if (j == c1 || !adam_moments(&sg, blk, j,", ["check_optim"]),
    # adam_dir.c's moments' sums in lanes: the legacy rounding taken in lanes, a carry, the
    # bound let through, the s = 0 check dropped
    ("src/optim/adam_dir.c", "_mm512_cmp_pd_mask(y1, m64, _CMP_GT_OQ)",
     "_mm512_cmp_pd_mask(y1, m64, _CMP_LT_OQ)", ["check_adam_dir"]),
    ("src/optim/adam_dir.c", "_mm512_cmplt_epu64_mask(l, xl)", "_mm512_cmplt_epu64_mask(xl, l)",
     ["check_adam_dir"]),
    ("src/optim/adam_dir.c", "(_mm512_cmpgt_epi64_mask(h, nlim) |",
     "(_mm512_cmpge_epi64_mask(h, nlim) |", ["check_adam_dir"]),
    ("src/optim/adam_dir.c", "if (!sub) /* s = 0 with m != 0 */", "if (sub) /* s = 0 with m != 0 */",
     ["check_adam_dir"]),
    # the reverse adjoint run in lanes: g instead of g^2 in beta2's term
    ("src/optim/adam_dir.c", "unit), _mm512_mul_pd(g, g));", "unit), g);", ["check_adam_dir"]),
    # the weights' moves in lanes: the overflow test dropped, the bound let through, the sign
    ("src/optim/adam_dir.c", "ok &= (__mmask8)~_mm512_movepi64_mask(ovf);", "ok &= 0xff;",
     ["check_adam_dir"]),
    ("src/optim/adam_dir.c", "_mm512_abs_pd(yv), lim, _CMP_LT_OQ)", "_mm512_abs_pd(yv), lim, _CMP_LE_OQ)",
     ["check_adam_dir"]),
    ("src/optim/adam.c", "k += rv_adam_moves(sign,", "k += rv_adam_moves(-sign,",
     ["check_optim", "check_pinned"]),
    # adam_dir.c's vector kernels: one operation changed, the bits differ from the scalar's
    ("src/optim/adam_dir.c", "_mm512_add_pd(_mm512_sqrt_pd", "_mm512_sub_pd(_mm512_sqrt_pd",
     ["check_adam_dir"]),
    ("src/optim/adam_dir.c", "_mm512_storeu_pd(t->du_ds + i, _mm512_mask_blend_pd(pos, zero, ds));",
     "_mm512_storeu_pd(t->du_ds + i, ds);", ["check_adam_dir"]),
    ("src/optim/rmsprop.c", "o->db[i] -= sg->alpha * p->dw[i];", "o->db[i] -= p->dw[i];",
     ["check_optim"]),
    ("src/optim/rmsprop.c", "s_gamma += db[i] * (rv_wide_to_double(b[i]) * wide_unit);",
     "s_gamma += db[i];", ["check_optim"]),
    ("src/optim/momentum.c", "dv[i] *= sg.gamma;", "dv[i] *= sg.one_minus_gamma;",
     ["check_optim", "check_pinned"]),
    ("src/optim/optim.c", "return rv_rate_applied(RV_GRID_BETA, value);",
     "return rv_rate_applied(RV_GRID_GAMMA, value);", ["check_optim"]),
    # ---- core/overlap.c: the forward's second thread
    # it never starts: the caller does every block (same bits, but the worker did nothing)
    ("src/core/overlap.c", "ov->started = pthread_create(&ov->thread, NULL, worker, ov) == 0;",
     "ov->started = 0;", ["check_optim"]),
    # the worker claims a block and skips it: that block's states are not multiplied
    ("src/core/overlap.c", "t->opt->forward_block(t->opt_self, &t->pass, step, &t->blocks[b], flags);",
     "if (b != 1) t->opt->forward_block(t->opt_self, &t->pass, step, &t->blocks[b], flags);",
     ["check_optim"]),
    # the update phase multiplies again
    ("src/core/trainer.c", "int phases = ov ? RV_FWD_UPDATE : RV_FWD_MUL | RV_FWD_UPDATE,",
     "int phases = RV_FWD_MUL | RV_FWD_UPDATE,", ["check_optim"]),
    # the worker's multiplies keep no bits
    ("src/core/trainer.c", "rv_overlap_post(ov, t, step, RV_FWD_MUL | keep);",
     "rv_overlap_post(ov, t, step, RV_FWD_MUL);", ["check_optim"]),
    # ---- exact/: the coder and the exact multiply
    ("src/exact/infobuf.h", "    while (st < RV_STATE_LOW)\n        st = (st << RV_WORD_BITS) | rv_pop_word(s);",
     "    if (st < RV_STATE_LOW)\n        st = (st << RV_WORD_BITS) | rv_pop_word(s);",
     ["check_optim"]),
    ("src/exact/wide.h", "    if (x == 0)\n        return 0;\n    rv_uwide y = rv_wide_mul_mag(",
     "    rv_uwide y = rv_wide_mul_mag(", ["check_optim"]),
    # wide.h's rounding and conversion: the first version's bits (check_wide)
    ("src/exact/wide.h", "*out = r < 0 ? rv_wide_round_legacy((double)r) : (rv_wide)r;",
     "*out = (rv_wide)r;", ["check_wide"]),
    ("src/exact/wide.h", "(double)(int64_t)(lo & 0xffffffffu);", "(double)(int64_t)(lo & 0x7fffffffu);",
     ["check_wide"]),
    ("src/exact/rate.h", "static const rv_rate_grid RV_GRID_BETA = {24, 1, (1u << 24) - 1};",
     "static const rv_rate_grid RV_GRID_BETA = {24, 0, (1u << 24) - 1};", ["check_optim"]),
    # wide_lanes.h, Adam's moments in lanes (check_coder_vec compares them with the plain loop):
    # the first pop of a moment reads the word pushed first, not the last
    ("src/exact/wide_lanes.h", "(u << RV_WORD_BITS) | L(sel)(spill, *w2, *w1), u);",
     "(u << RV_WORD_BITS) | L(sel)(spill, *w1, *w2), u);", ["check_coder_vec"]),
    # the reverse keeps a group whose m pops a word an earlier parameter left
    ("src/exact/wide_lanes.h", "MASK(ext_v | ext_m)", "MASK(ext_v)", ["check_coder_vec"]),
    # q = y >> 24 split one bit off between the high and low halves
    ("src/exact/wide_lanes.h", "VU ql = (x.yl >> 24) | (x.yh << 40)", "VU ql = (x.yl >> 24) | (x.yh << 41)",
     ["check_coder_vec"]),
    # the carry of sign (1 + y') into the high half goes the wrong way
    ("src/exact/wide_lanes.h", "VU rh = yh + ((VU)(rl == 0) & m->pos);",
     "VU rh = yh - ((VU)(rl == 0) & m->pos);", ["check_coder_vec"]),
    # the second of a moment's two words is dropped from the stack
    ("src/exact/wide_lanes.h", "len += left_m[j] >= 2;", "len += left_m[j] > 2;",
     ["check_coder_vec", "check_optim"]),
    # ---- core/: fingerprints, outputs only on success, the end-of-run checks
    ("src/core/reverse.c", "if (fp != t->fingerprint[step])", "if (0)",
     ["check_optim", "check_errors"]),
    ("src/core/trainer.c", "t->fingerprint[step] = rv_fingerprint(t->grad, t->n_params);", "",
     ["check_optim"]),
    ("src/core/reverse.c", "if (!rv_infobuf_is_empty(&t->buf))", "if (0)", ["check_optim"]),
    ("src/core/reverse.c", "            memcpy(user_out[k], out[k], n_sg * sizeof *out[k]);", "",
     ["check_optim"]),
    ("src/hyperopt/coords.c", "return x * (1.0 - x);", "return x;", ["check_hyperopt"]),
    # ---- base/
    ("src/base/struct_size.c", "if (struct_size == s->sizes[k])",
     "if (struct_size >= s->sizes[k])", ["check_hardening"]),
    ("src/base/alloc.c", "if (__builtin_mul_overflow(n, size, &r)) {",
     "if (0 && __builtin_mul_overflow(n, size, &r)) {", ["check_dataset", "check_errors"]),
    ("src/base/file.c", "if (!S_ISREG(st.st_mode)) {", "if (S_ISFIFO(st.st_mode)) {",
     ["check_hardening", "check_dataset"]),
    ("src/base/random.c", "return ((double)(rv_rand_u64(state) >> 11) + 0.5) * 0x1p-53;",
     "return ((double)(rv_rand_u64(state) >> 11) + 0.25) * 0x1p-53;",
     ["check_errors", "check_mlp", PY]),
    # ---- core/model.c
    ("src/core/model.c", "if (offsets[g + 1] <= offsets[g])", "if (offsets[g + 1] < offsets[g])",
     ["check_errors"]),
    ("src/core/model.c", "hv_w[i] = (gp[i] - gm[i]) / (2 * h);", "hv_w[i] = (gp[i] - gm[i]) / h;",
     ["check_trainer", "check_errors"]),
    ("src/core/model.c", "hv_meta[j] = (dot_p - dot_m) / (2 * hj);",
     "hv_meta[j] = (dot_m - dot_p) / (2 * hj);", ["check_trainer", "check_errors"]),
    ("src/core/model.c", "s += d_w0[i] * w0[i];", "s += d_w0[i];", ["check_trainer", PY]),
    ("src/core/model.c", "        hv_meta = m->hv_meta_scratch;\n", "",
     ["check_hardening"]),
    ("src/core/model.c", "__builtin_add_overflow(fd_len, def->n_meta, &fd_len) ||", "",
     ["check_hardening"]),
    # ---- data/
    ("src/data/dataset.c", "(size_t)labels[i] >= n_classes", "(size_t)labels[i] > n_classes",
     ["check_errors", "check_dataset"]),
    ("src/data/dataset.c", "if (count == 0 || first > src->n || count > src->n - first)",
     "if (count == 0 || first > src->n)", ["check_errors", "check_dataset"]),
    ("src/data/dataset.c", "            sd[j] = 1.0;", "            sd[j] = 2.0;",
     ["check_dataset"]),
    ("src/data/dataset.c", "    rv_clear(d->err); /* the call succeeded", "    /* the call succeeded",
     ["check_hardening"]),
    ("src/data/idx.c", "scale[v] = v / 255.0;", "scale[v] = v / 256.0;", ["check_dataset"]),
    ("src/data/source.c", "    if (after)\n        return rv_fail(err, REVL_ERR_IO,",
     "    if (0)\n        return rv_fail(err, REVL_ERR_IO,", ["check_dataset"]),
    # ---- models/
    ("src/models/mlp_pass.c", "out[i] = d[i] * (1.0 - h[i] * h[i]);",
     "out[i] = d[i] * (1.0 + h[i] * h[i]);", ["check_mlp"]),
    ("src/models/mlp_batch.c", "first = (step % m->n_batches) * m->batch;",
     "first = (step % m->n_batches);", ["check_mlp", PY]),
    ("src/models/mlp_penalty.c", "value += 0.5 * m->lambda[i] * (w[i] * w[i]);",
     "value += m->lambda[i] * (w[i] * w[i]);", ["check_mlp"]),
    ("src/models/mlp_penalty.c",
     "if (m->lambda_valid && memcmp(m->meta_seen, meta, m->n_meta * sizeof *meta) == 0)",
     "if (m->lambda_valid)", ["check_mlp", PY]),
    ("src/models/mlp_eval.c", "correct += argmax(ws.p + r * K, K) == (size_t)yb[r];",
     "correct += argmax(ws.p + r * K, K) != (size_t)yb[r];", ["check_mlp", PY]),
    ("src/models/mlp_eval.c", "*loss = total * scale;", "*loss = total;", ["check_mlp", PY]),
    ("src/models/mlp.c", " ||\n           revl_dataset_n_classes(m->train) > m->widths[m->n_layers];",
     ";", ["check_hardening"]),
    # ---- hyperopt/
    ("src/hyperopt/hyperopt.c", "sqrt(h->m2[k] / c2)", "sqrt(h->m2[k])", ["check_hyperopt", PY]),
    ("src/hyperopt/hyperopt.c", "h->step_size *= 0.5;", "h->step_size *= 0.25;",
     ["check_hardening", "check_hyperopt"]),
    ("src/hyperopt/hyperopt.c", "h->min_norm = fmin(h->min_norm, norm);",
     "h->min_norm = fmax(h->min_norm, norm);", ["check_hardening", "check_hyperopt"]),
    ("src/hyperopt/hyperopt.c", "if (f < h->best_loss) {", "if (f > h->best_loss) {",
     ["check_hyperopt", PY]),
    ("src/hyperopt/hyperopt.c", "h->min_norm = fmin(h->min_norm, norm);",
     "h->min_norm = fmax(h->min_norm, norm);", ["check_hyperopt"]),
    ("src/hyperopt/hyperopt.c", "if (!h->in_step)\n        return REVL_OK;",
     "if (1)\n        return REVL_OK;", ["check_hardening"]),
    ("src/hyperopt/hyperopt.c", "if (h->model->offsets[k] != h->offsets[k])",
     "if (h->model->offsets[k] != h->model->offsets[k])", ["check_hardening"]),
    ("src/hyperopt/hyperopt_io.c", 'fprintf(f, " %.17g", x[r * cols + c]);',
     'fprintf(f, " %.15g", x[r * cols + c]);', ["check_hyperopt", PY]),
    # ---- the Python binding
    ("python/revl/_base.py", "    if not minimum <= int(x) <= maximum:",
     "    if False:", [PY]),
    ("python/revl/_base.py", '    if b"\\0" in b:', "    if False:", [PY]),
    ("python/revl/data.py", "        with _Busy((h,)):  # a set() on another thread",
     "        with _Busy(()):  # a set() on another thread", [PY]),
    ("python/revl/core.py", "return property(lambda self: hyper_applied(kind, self.get_kind(kind)),",
     "return property(lambda self: self.get_kind(kind),", [PY]),
    ("python/revl/mlp.py", "            off += a * b\n", "            off += a * b + 1\n", [PY]),
    ("python/revl/hyperopt.py", "r.hypergrad_norm, r.step_size, r.seconds, bool(r.chaos))",
     "r.step_size, r.hypergrad_norm, r.seconds, bool(r.chaos))", [PY]),
    # ---- the Python tuner binding (python/revl/tuner.py, mlp.py)
    ("python/revl/tuner.py", "return cls(PHASES.get(r.phase, str(r.phase)), int(r.index), r.loss, r.best_loss,",
     "return cls(PHASES.get(r.phase, str(r.phase)), int(r.index), r.best_loss, r.loss,", [PY]),
    ("python/revl/tuner.py", "_store_result(dtheta_p, n_theta, fn(theta, dz), \"dtheta\", \"vjp\")",
     "_store_result(dtheta_p, n_theta, fn(theta, -dz), \"dtheta\", \"vjp\")", [PY]),
    ("python/revl/tuner.py", "        history.append(r)\n", "        pass\n", [PY]),
    ("python/revl/mlp.py", "return out[:count.value].astype(np.int64)",
     "return out[:count.value - 1].astype(np.int64)", [PY]),
]


def sh(cmd, cwd, timeout=None):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


def copy_tree():
    """The tracked files (as they are now, edits included) into build-mutants/tree."""
    files = sh(["git", "ls-files", "-co", "--exclude-standard"], ROOT).stdout.split()
    if TREE.exists():
        shutil.rmtree(TREE)
    for f in files:
        src = ROOT / f
        if src.is_file():
            dst = TREE / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def build(jobs, targets=("lib",)):
    r = sh(["make", f"-j{jobs}", "--no-print-directory", *targets], TREE)
    return r.returncode == 0, r.stdout


def run_suite(name, jobs):
    """True when the suite passes. A suite's binary is linked when it is first needed, so a
    mutant killed by its first suite costs one link, not ten."""
    env = dict(os.environ, CK_FORK="yes")
    if name != PY and not build(jobs, (f"build/tests/{name}",))[0]:
        return False
    try:
        if name == PY:
            lib = next((TREE / "lib").glob("librevl.so.*.*.*"))
            env["REVL_LIBRARY"] = str(lib)
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file must not meet a stale .pyc
            r = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-x", "-p",
                                "no:cacheprovider", "tests"], cwd=TREE / "python", env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=600)
        else:
            r = subprocess.run([str(TREE / "build" / "tests" / name)], cwd=TREE, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=600)
    except subprocess.TimeoutExpired:
        return False  # a hang is a failure the tests noticed (Check's own timeouts, or ours)
    return r.returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    chosen = [m for m in MUTANTS if a.only in m[0] + m[1]]
    if a.list:
        for i, (path, old, new, _) in enumerate(chosen):
            print(f"{i:2d} {path}: {old.strip()!r} -> {new.strip()!r}")
        return 0
    t0 = time.time()
    copy_tree()
    ok, log = build(a.jobs, ("lib", "tests"))
    if not ok:
        print(log)
        print("mutants: the unmutated tree does not build")
        return 1
    for suite in C_ALL + [PY]:
        if not run_suite(suite, a.jobs):
            print(f"mutants: {suite} fails on the unmutated tree: nothing to learn from kills")
            return 1
    survived, broken = [], []
    for i, (path, old, new, first) in enumerate(chosen):
        f = TREE / path
        text = f.read_text()
        if text.count(old) != 1:
            broken.append(f"{path}: {old.strip()!r} occurs {text.count(old)} times")
            print(f"[{i:2d}] {path}: does not apply ({text.count(old)} matches)")
            continue
        f.write_text(text.replace(old, new))
        try:
            # a Python mutant needs no rebuild; a C one rebuilds the library now and each suite's
            # binary when that suite runs
            ok = path.endswith(".py") or build(a.jobs)[0]
            if not ok:
                broken.append(f"{path}: {new.strip()!r} does not compile")
                print(f"[{i:2d}] {path}: does not compile")
                continue
            order = first + [s for s in C_ALL + [PY] if s not in first]
            killer = next((s for s in order if not run_suite(s, a.jobs)), None)
            print(f"[{i:2d}] {path}: {new.strip()[:60]!r}: "
                  f"{'killed by ' + killer if killer else 'SURVIVED'}", flush=True)
            if killer is None:
                survived.append(f"{path}: {old.strip()!r} -> {new.strip()!r}")
        finally:
            f.write_text(text)
            os.utime(f, None)  # newer than the mutant's objects: the next build recompiles it
    print(f"mutants: {len(chosen) - len(survived) - len(broken)} of {len(chosen)} killed, "
          f"{len(survived)} survived, {len(broken)} did not apply, in {time.time() - t0:.0f} s")
    for s in survived:
        print("  survived:", s)
    for b in broken:
        print("  broken:", b)
    return 1 if survived or broken else 0


if __name__ == "__main__":
    sys.exit(main())
