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

C_ALL = ["check_vmath", "check_hardening", "check_errors", "check_mlp", "check_hyperopt", "check_dataset",
         "check_trainer", "check_infobuf", "check_update", "check_threads", "check_optim",
         "check_pinned", "check_wide", "check_adam_dir", "check_coder_vec", "check_family",
         "check_tuner", "check_forward", "check_ratio", "check_clip", "check_rms_dir",
         "check_round_vec"]
PY = "python"

# (file, original, mutated, suites to try first); every suite runs if those let it through.
MUTANTS = [
    # ---- optim/: an adjoint term dropped or mixed up, in each optimiser
    ("src/optim/adam.c", "o->r1[g] += -sg->alpha * sum[SLOT_C1] * sg->p1;",
     "o->r1[g] += -sg->alpha * sum[SLOT_C1] * sg->beta1;", ["check_optim"]),
    ("src/optim/adam.c", "b_scale = -2.0 * sg->omb2;", "b_scale = -sg->omb2;", ["check_optim"]),
    # ds scaled by beta1 (the adjoint run takes both betas from adam.c: lanes and plain alike)
    ("src/optim/adam.c", "const rv_adam_back back = {sg.beta1, sg.beta2,",
     "const rv_adam_back back = {sg.beta1, sg.beta1,", ["check_optim"]),
    ("src/optim/adam.c", "double m = dm[k] - alpha * dw[k] * t->du_dm[k];",
     "double m = dm[k] - dw[k] * t->du_dm[k];", ["check_optim"]),
    # a moment failure recorded at once: reported before an earlier weight failure of its chunk
    ("src/optim/adam.c", "if (j == c1 || !adam_moments(&sg, NULL, j,",
     "if (j == c1 || !adam_moments(&sg, blk, j,", ["check_optim"]),
    # adam_dir.c's moments' sums in lanes: the legacy rounding taken in lanes, a carry, the
    # bound let through, the s = 0 check dropped
    ("src/optim/adam_dir.c", "_mm512_cmp_pd_mask(y1, m64, _CMP_GT_OQ)",
     "_mm512_cmp_pd_mask(y1, m64, _CMP_LT_OQ)", ["check_adam_dir"]),
    ("src/optim/dir_lanes.h", "_mm512_cmplt_epu64_mask(l, xl)", "_mm512_cmplt_epu64_mask(xl, l)",
     ["check_adam_dir"]),
    ("src/optim/dir_lanes.h", "(_mm512_cmpgt_epi64_mask(h, nlim) |",
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
    ("src/optim/optim.h", "k += rv_adam_moves(sign,", "k += rv_adam_moves(-sign,",
     ["check_optim", "check_pinned"]),
    # adam_dir.c's vector kernels: one operation changed, the bits differ from the scalar's
    ("src/optim/adam_dir.c", "_mm512_add_pd(_mm512_sqrt_pd", "_mm512_sub_pd(_mm512_sqrt_pd",
     ["check_adam_dir"]),
    ("src/optim/adam_dir.c", "_mm512_storeu_pd(t->du_ds + i, _mm512_mask_blend_pd(pos, zero, ds));",
     "_mm512_storeu_pd(t->du_ds + i, ds);", ["check_adam_dir"]),
    # u's derivatives from three divisions (adam_dir.h): a factor lost in the lanes or in both
    ("src/optim/adam_dir.c", "_mm512_storeu_pd(t->du_dm + i, _mm512_mul_pd(r, ic1));",
     "_mm512_storeu_pd(t->du_dm + i, r);", ["check_adam_dir"]),
    ("src/optim/adam_dir.h", "    t->du_dc2[i] = d2 > 0 ? e * a * h : 0.0;",
     "    t->du_dc2[i] = d2 > 0 ? e * a : 0.0;", ["check_optim"]),
    ("src/optim/adam_dir.c", "const double ic1s = 1.0 / c1, hs = 1.0 / (2.0 * c2);",
     "const double ic1s = 1.0 / c1, hs = 1.0 / c2;", ["check_adam_dir"]),
    ("src/optim/adam_dir.c", "    const double ic1 = 1.0 / c1, h = 1.0 / (2.0 * c2);",
     "    const double ic1 = 1.0 / c1, h = 1.0 / c2;", ["check_optim"]),
    ("src/optim/rmsprop.c", "db[k] -= alpha * dw[k];", "db[k] -= dw[k];",
     ["check_optim"]),
    # RMSprop's undone move without the fixed-point scale; d alpha's terms without b
    ("src/optim/rmsprop.c", "y[k] = alpha * bd[k] * w_scale;", "y[k] = alpha * bd[k];",
     ["check_optim"]),
    ("src/optim/rmsprop.c", "s_alpha += dw[k] * bd[k];", "s_alpha += dw[k];", ["check_optim"]),
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
    ("src/exact/wide.h",
     "    if (x == 0)\n        return 0;\n    rv_uwide ux = (rv_uwide)x, mag = x < 0 ? -ux : ux; "
     "/* unsigned: defined for -2^127 too */\n    rv_uwide y = rv_wide_mul_mag(",
     "    rv_uwide ux = (rv_uwide)x, mag = x < 0 ? -ux : ux;\n    rv_uwide y = rv_wide_mul_mag(",
     ["check_optim"]),
    # wide.h's rounding and conversion: the first version's bits (check_wide)
    ("src/exact/wide.h", "*out = r < 0 ? rv_wide_round_legacy((double)r) : (rv_wide)r;",
     "*out = (rv_wide)r;", ["check_wide"]),
    ("src/exact/wide.h", "(double)(int64_t)(lo & 0xffffffffu);", "(double)(int64_t)(lo & 0x7fffffffu);",
     ["check_wide"]),
    ("src/exact/rate.h", "static const rv_rate_grid RV_GRID_BETA = {24, 1, (1u << 24) - 1};",
     "static const rv_rate_grid RV_GRID_BETA = {24, 0, (1u << 24) - 1};", ["check_optim"]),
    # lanes.h's divmod32 (a double estimate on eight lanes): the cap at 2^32 - 1, either
    # correction, and rv_divmod's estimate on four lanes
    ("src/exact/lanes.h", "VU q = (VU)_mm512_min_epu64(_mm512_cvttpd_epu64(e), (__m512i)L(splat)(0xffffffffu));",
     "VU q = (VU)_mm512_cvttpd_epu64(e);", ["check_coder_vec"]),
    ("src/exact/lanes.h", "*rem = r + (under & d) - (over & d);", "*rem = r - (over & d);",
     ["check_coder_vec"]),
    ("src/exact/lanes.h", "return q + under - over; /*", "return q - over; /*", ["check_coder_vec"]),
    ("src/exact/lanes.h", "    VU q = L(mulhi)(y, inv32);\n    VU r = y - MULU(q, d);\n    VU over = (VU)((VI)r >= (VI)d);\n    *rem = r - (over & d);",
     "    VU q = L(mulhi)(y, inv32);\n    VU r = y - MULU(q, d);\n    VU over = (VU)((VI)r > (VI)d);\n    *rem = r - (over & d);", ["check_coder_vec"]),
    # wide_lanes.h, Adam's moments in lanes (check_coder_vec compares them with the plain loop):
    # the first pop of a moment reads the word pushed first, not the last
    ("src/exact/wide_lanes.h", "(u << RV_WORD_BITS) | L(sel)(spill, *w2, *w1), u);",
     "(u << RV_WORD_BITS) | L(sel)(spill, *w1, *w2), u);", ["check_coder_vec"]),
    # the reverse keeps a group whose m pops a word an earlier parameter left
    ("src/exact/wide_runs.h", "MASK(ext_v | ext_m)", "MASK(ext_v)", ["check_coder_vec"]),
    # q = y >> bits split one bit off between the high and low halves
    ("src/exact/wide_lanes.h", "VU ql = (x.yl >> bits) | (x.yh << (64 - bits))",
     "VU ql = (x.yl >> bits) | (x.yh << (65 - bits))", ["check_coder_vec"]),
    # the carry of sign (1 + y') into the high half goes the wrong way
    ("src/exact/wide_lanes.h", "VU rh = yh + ((VU)(rl == 0) & m->pos);",
     "VU rh = yh - ((VU)(rl == 0) & m->pos);", ["check_coder_vec"]),
    # the second of a moment's two words is dropped from the stack
    ("src/exact/wide_runs.h", "len += left_m[j] >= 2;", "len += left_m[j] > 2;",
     ["check_coder_vec", "check_optim"]),
    # ---- core/: fingerprints, outputs only on success, the end-of-run checks
    ("src/core/reverse.c", "if (fp != t->fingerprint[step])", "if (0)",
     ["check_optim", "check_errors"]),
    ("src/core/trainer.c", "t->fingerprint[step] = rv_fingerprint(t->grad, t->n_params);", ";",
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
    ("src/data/idx.c", "rv_pixels_to_double(x, img, n * dim);",
     "rv_pixels_to_double(x, img, (n - 1) * dim);", ["check_dataset"]),
    ("src/data/source.c", "    if (after)\n        return rv_fail(err, REVL_ERR_IO,",
     "    if (0)\n        return rv_fail(err, REVL_ERR_IO,", ["check_dataset"]),
    # ---- models/
    ("src/base/vmath_lanes.h", "RV_VSLOPE(L(slope_tanh), d * (L(splat)(1.0) - h * h))",
     "RV_VSLOPE(L(slope_tanh), d * (L(splat)(1.0) + h * h))", ["check_vmath", "check_mlp"]),
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
    # ---- hyperopt/family*.c: schedule families (check_family)
    ("src/hyperopt/family.c", "dtheta[f->th_lf] += row * dlog;", "dtheta[f->th_lf] -= row * dlog;",
     ["check_family"]),
    ("src/hyperopt/family.c", "*out = t % w ? *out + d : d;", "*out = d;", ["check_family"]),
    ("src/hyperopt/family.c", "*dlog = fr * dsdf / s;", "*dlog = dsdf / s;", ["check_family"]),
    ("src/hyperopt/family.c", "dtheta[f->th_mult + f->layer[g]] += dk[t * G + g];",
     "dtheta[f->th_mult] += dk[t * G + g];", ["check_family"]),
    ("src/hyperopt/family.c", "log((double)(t + 1) / (double)f->o.warmup)",
     "log((double)t / (double)f->o.warmup)", ["check_family"]),
    ("src/hyperopt/family.c", "z[f->z_meta + j] = f->base[f->z_meta + j] + theta[f->th_meta];",
     "z[f->z_meta + j] = theta[f->th_meta];", ["check_family"]),
    ("src/hyperopt/family.c", "theta[tb + t0 / w * G + g] = s / (double)(t1 - t0);",
     "theta[tb + t0 / w * G + g] = s / (double)w;", ["check_family"]),
    ("src/hyperopt/family.c", "int rc = f->o.map(theta, f->zs, f->o.user);",
     "int rc = f->o.map(theta, z, f->o.user);", ["check_family"]),
    ("src/hyperopt/family.c", "isfinite(hi[i]) && lo[i] < hi[i]", "isfinite(hi[i])",
     ["check_family"]),
    ("src/hyperopt/family_layout.c", "if (o->type == REVL_FAMILY_WINDOWS && o->window == 0)",
     "if (0)", ["check_family"]),
    ("src/hyperopt/family_layout.c", "if (o->group_layer[g] >= n_layers)", "if (0)",
     ["check_family"]),
    ("src/hyperopt/family_layout.c", "(size_t)((unsigned __int128)g * f->n_layers / G)",
     "g % f->n_layers", ["check_family"]),
    ("src/hyperopt/family_layout.c", "if (f->opt->id == REVL_OPTIM_MOMENTUM)", "if (1)",
     ["check_family"]),
    ("src/hyperopt/family_layout.c", "if ((learn & REVL_LEARN_META) && f->n_meta) {",
     "if (learn & REVL_LEARN_INIT_SCALE) {", ["check_family"]),
    ("src/hyperopt/family.c", "if ((i = first_bad(f->zs, f->n_z)) < f->n_z)", "if (0)",
     ["check_family"]),
    ("src/hyperopt/family.c", "if ((i = first_bad(f->ts, f->n_theta)) < f->n_theta)", "if (0)",
     ["check_family"]),
    ("src/hyperopt/family.c", "if ((i = first_bad(dz, f->n_z)) < f->n_z)", "if (0)",
     ["check_family"]),
    ("src/hyperopt/family.c", "size_t i = first_bad(z0, f->n_z);", "size_t i = f->n_z;",
     ["check_family"]),
    ("src/hyperopt/family.c", "int rc = f->o.vjp(theta, dz, f->ts, f->o.user);",
     "int rc = f->o.vjp(theta, dz, dtheta, f->o.user);", ["check_family"]),
    # ---- hyperopt/tuner*.c: the tuner (check_tuner)
    # the acceptance rule: a worse (or equal) step kept
    ("src/hyperopt/tuner.c", "int accepted = f < t->cur_loss;", "int accepted = f <= t->cur_loss + 0.05;",
     ["check_tuner"]),
    # the chain rule to z dropped, the init scales' gradient not added, the step's sign
    ("src/hyperopt/tuner.c", "t->dz[j * n + k] *= rv_coord_dnatural(c, x);", "(void)x;",
     ["check_tuner"]),
    ("src/hyperopt/tuner.c", "t->g_acc[k] += t->dz[k];", "t->g_acc[k] = t->dz[k];", ["check_tuner"]),
    ("src/hyperopt/tuner.c", "t->cand[i] = t->theta[i] - s * t->cand[i];",
     "t->cand[i] = t->theta[i] + s * t->cand[i];", ["check_tuner"]),
    # a refused step not shrinking; a kept one not growing
    ("src/hyperopt/tuner.c", "t->step *= t->opts.step_shrink;", "t->step *= 1.0;", ["check_tuner"]),
    ("src/hyperopt/tuner.c", "t->step = fmin(t->step * t->opts.step_grow, MAX_STEP);",
     "t->step = fmin(t->step, MAX_STEP);", ["check_tuner"]),
    # the best point's weights not kept with it; a diverged run counted as a loss of 0
    ("src/hyperopt/tuner.c", "memcpy(t->best_w, t->wT, t->n_params * sizeof *t->wT);", "(void)0;",
     ["check_tuner"]),
    ("src/hyperopt/tuner.c", "        *f = INFINITY;\n        *acc = NAN;\n        return REVL_OK;",
     "        *f = 0;\n        *acc = NAN;\n        return REVL_OK;", ["check_tuner"]),
    # the budget: runs not counted; guards
    ("src/hyperopt/tuner.c", "    t->runs++;\n    if (rc == REVL_ERR_RANGE ||",
     "    t->runs += 2;\n    if (rc == REVL_ERR_RANGE ||", ["check_tuner"]),
    # early abandonment: never abandoning, or abandoning a run whose loss only doubled
    ("src/hyperopt/tuner.c", "    t->abandoned = 1;\n    return 1;", "    return 0;",
     ["check_tuner"]),
    ("src/hyperopt/tuner.c", "#define ABANDON 4.0", "#define ABANDON 0.5", ["check_tuner"]),
    ("src/hyperopt/tuner.c", "if (o.n_orders > 1 && model->builtin.evaluate != rv_mlp_evaluate)",
     "if (0)", ["check_tuner"]),
    # the checkpoint: the told results' loss, the seed left out of the options hash, the step
    ("src/hyperopt/tuner_checkpoint.c", "o->n_orders, o->seed, o->frac_bits,",
     "o->n_orders, o->frac_bits,", ["check_tuner"]),
    ("src/hyperopt/tuner_checkpoint.c", "t->step = s[4];", "t->step = t->opts.refine_step;",
     ["check_tuner"]),
    # the loader's structural checks, reached by forged files with a recomputed checksum
    ("src/hyperopt/tuner_checkpoint.c", "if (!(u[i] > 0 && u[i] < 1))", "if (0)", ["check_tuner"]),
    ("src/hyperopt/tuner_checkpoint.c", " || c[10] > 1 ||", " ||", ["check_tuner"]),
    ("src/hyperopt/tuner_checkpoint.c", "int rc = rv_sampler_tell(fresh, u, loss);",
     "int rc = rv_sampler_tell(fresh, u, 1.0);", ["check_tuner"]),
    # the minibatch order reseeded without a new permutation
    ("src/models/mlp_batch.c", "m->perm_valid = 0; /* the permutation", "m->perm_valid = 1; /* the permutation",
     ["check_tuner"]),
    # ---- hyperopt/sampler.c, lowdisc.c: the tuner's global search (TPE over scrambled Halton
    # points): l and g swapped, the scrambling dropped, a digit map that is not a permutation,
    # no floor on the kernels' widths, the truncated kernels not renormalised, +inf among the
    # good, ties ranked to the later result
    ("src/hyperopt/sampler.c", "const double score = log_mixture(s, s->rank, g, s->cand) -",
     "const double score = -log_mixture(s, s->rank, g, s->cand) +", ["check_sampler"]),
    ("src/hyperopt/lowdisc.c", "digit[n_digits++] = permute((uint32_t)(n % b), b, key);",
     "digit[n_digits++] = (uint32_t)(n % b);", ["check_sampler"]),
    ("src/hyperopt/lowdisc.c", "    } while (x >= b);\n    return x;",
     "    } while (0);\n    return x % b;", ["check_sampler"]),
    ("src/hyperopt/sampler.c", "w = w < MIN_WIDTH ? MIN_WIDTH : w > 1 ? 1 : w;",
     "w = w > 1 ? 1 : w;", ["check_sampler"]),
    ("src/hyperopt/sampler.c", "= log(w) + LOG_SQRT_2PI + log(mass);", "= log(w) + LOG_SQRT_2PI;",
     ["check_sampler"]),
    ("src/hyperopt/sampler.c", "return g < s->n_finite ? g : s->n_finite;", "return g;",
     ["check_sampler"]),
    ("src/hyperopt/sampler.c", "if (s->loss[s->rank[mid]] <= loss)",
     "if (s->loss[s->rank[mid]] < loss)", ["check_sampler"]),
    # ---- forward-only training and the progress callback (issue 22; check_forward)
    # the kept steps rounded instead of run through the coder: other bits than train's
    ("src/core/trainer.c", "fwd_only ? RV_FWD_KEEP | RV_FWD_SINK : RV_FWD_KEEP;",
     "fwd_only ? RV_FWD_SINK : RV_FWD_KEEP;", ["check_forward"]),
    # the words kept after all (the stack grows), or the stacks reserved for every step
    ("src/optim/optim.h", "if (flags & RV_FWD_SINK)\n        s->len = 0;",
     "if (flags & RV_FWD_SINK & 0)\n        s->len = 0;", ["check_forward"]),
    ("src/optim/adam.c", "rv_stack_sink(&stack, flags);", "", ["check_forward"]),
    ("src/core/trainer.c", "if (t->forward_only)\n        reserve_sink(t);",
     "if (0)\n        reserve_sink(t);", ["check_forward"]),
    # a forward-only trainer taken for a trained one, checkpointing, or resuming forward-only
    ("src/core/trainer.c", "t->state = fwd_only ? RV_FORWARD_ONLY : RV_TRAINED;",
     "t->state = RV_TRAINED;", ["check_forward"]),
    ("src/core/trainer.c", "if (t->ckpt_path && !fwd_only &&", "if (t->ckpt_path &&",
     ["check_forward"]),
    ("src/core/checkpoint.c", "    t->forward_only = 0; /* a checkpoint", "    /* a checkpoint",
     ["check_forward"]),
    ("src/core/checkpoint.c", "if (t->state == RV_FORWARD_ONLY)", "if (0)", ["check_forward"]),
    ("src/core/reverse.c", ": t->state == RV_FORWARD_ONLY", ": t->state == RV_PARTIAL",
     ["check_forward"]),
    # train's fingerprints skipped instead of train_forward's
    ("src/core/trainer.c", "if (!fwd_only)\n            t->fingerprint[step]",
     "if (fwd_only)\n            t->fingerprint[step]", ["check_forward", "check_optim"]),
    # progress: the stop ignored, the last step not reported, the reverse counted from 0, the
    # reverse reported as the forward
    ("src/core/progress.c", "int stop = t->progress(", "int stop = 0 * t->progress(",
     ["check_forward"]),
    ("src/core/progress.c", "if (!last && taken % t->progress_every != 0)",
     "if (taken % t->progress_every != 0)", ["check_forward"]),
    ("src/core/progress.c", "size_t taken = phase ? t->n_steps - step : step;",
     "size_t taken = step;", ["check_forward"]),
    ("src/core/reverse.c", "rv_trainer_progress(t, step, 1, step == t->first_kept, NAN)",
     "rv_trainer_progress(t, step, 0, step == t->first_kept, NAN)", ["check_forward"]),
    # a sharded trainer's stop not voted on (one rank's stop would leave the others waiting)
    ("src/core/progress.c", "return rv_shard_vote(t, rc);", "return rc;", ["check_forward"]),
    # Python: the progress callback's stop ignored; forward_only ignored
    ("python/revl/core.py", "            return 1 if fn(p) else 0\n",
     "            fn(p)\n            return 0\n", [PY]),
    ("python/revl/core.py", "lib.trainer_train_forward, \"revl_trainer_train_forward\") if forward_only",
     "lib.trainer_train_forward, \"revl_trainer_train_forward\") if False", [PY]),
    # ---- AdamW, weight decay and the open set of kinds (adamw branch)
    # the decay's adjoint: dw not scaled by rho; d alpha without its decay term
    ("src/exact/ratio_run.h", "    g[i] *= rho;\n    return term;", "    return term;",
     ["check_ratio", "check_optim"]),
    ("src/optim/adamw.c", "d_kinds[K_ALPHA][k] += -sg->lambda * s;",
     "d_kinds[K_ALPHA][k] += 0 * s;", ["check_optim"]),
    # the decay after Adam's step instead of before it (not torch's AdamW)
    ("src/optim/adamw.c",
     "    decay_forward(o, p, step, blk, flags & RV_FWD_KEEP);\n"
     "    ADAM.forward_block(o->adam, p, step, blk, flags & ~RV_FWD_MUL);\n",
     "    ADAM.forward_block(o->adam, p, step, blk, flags & ~RV_FWD_MUL);\n"
     "    decay_forward(o, p, step, blk, flags & RV_FWD_KEEP);\n", ["check_optim"]),
    # coupled-like: the decay scaled by lambda alone, not alpha lambda
    ("src/optim/adamw.c", "rv_ratio_make(&sg->code, sg->alpha * sg->lambda) &&",
     "rv_ratio_make(&sg->code, 0.01 * sg->lambda) &&", ["check_optim"]),
    # wrong grid: a coarser fraction
    ("src/exact/ratio.h", "r->k = (uint64_t)nearbyint(ldexp(c, 64));",
     "r->k = (uint64_t)nearbyint(ldexp(c, 20)) << 44;", ["check_optim"]),
    # (LOW_BITS, the bits kept below w's quantum, is no longer a mutant: the decay of
    # src/exact/ratio.h is within one unit of W's last place, so 24 bits work as 60 do)
    # the lambda = 0 fast path: taken for small lambda too; not taken for a factor of 1
    ("src/optim/adamw.c", "sg->decay = sg->lambda != 0 &&", "sg->decay = sg->lambda > 1e-3 &&",
     ["check_optim"]),
    ("src/optim/adamw.c",
     "sg->decay = sg->lambda != 0 && rv_ratio_make(&sg->code, sg->alpha * sg->lambda) &&\n"
     "                sg->code.k != 0;",
     "sg->decay = rv_ratio_make(&sg->code, sg->alpha * sg->lambda);", ["check_optim"]),
    # alpha * weight_decay's range not checked
    ("src/optim/adamw.c", "if (values[K_LAMBDA] == 0 || (x >= 0 && x <= 1 - 0x1p-18))",
     "if (values[K_LAMBDA] == 0 || x <= 1)", ["check_optim"]),
    # the shipped count: the old call reading REVL_HYPER_COUNT entries; entries past the kinds
    # this library knows not refused
    ("src/core/reverse.c", "                           RV_HYPER_KINDS_SHIPPED, d_kinds, d_meta);",
     "                           REVL_HYPER_COUNT, d_kinds, d_meta);", ["check_optim"]),
    ("src/core/reverse.c", "        if (k >= REVL_HYPER_COUNT)\n            return rv_fail(",
     "        if (0)\n            return rv_fail(", ["check_optim"]),
    # the fraction's denominator off by a little
    ("src/exact/ratio.h", "r->d = (uint64_t)0 - r->k;", "r->d = (uint64_t)0 - r->k - 1000;",
     ["check_ratio", "check_optim"]),
    # a learned log weight_decay of 0 not refused
    ("src/hyperopt/hyperopt.c", "if (!(h->cur[(size_t)wdk * n + k] > 0))", "if (0)",
     ["check_hyperopt"]),
    # ---- core/shard.c, parallel/ (issue 24 items 6-10, 22): what the ranks agree on, rounding, the vote, the
    # callbacks' zeroed outputs (check_dp: thread ranks)
    ("src/parallel/dp.c", "        acc[i] += (int64_t)llrint(x[i] * d->scale);",
     "        acc[i] += (int64_t)(x[i] * d->scale);", ["check_dp"]),
    ("src/parallel/dp.c", "    h = mix(h, meta, meta ? nm : 0);", "    h = mix(h, meta, 0);", ["check_dp"]),
    ("src/parallel/dp.c", "    h = mix(h, v, v ? n : 0);", "    h = mix(h, v, 0);", ["check_dp"]),
    ("src/parallel/dp.c", "    for (int r = 0; r < size; r++)", "    for (int r = size; r-- > 0;)",
     ["check_dp"]),
    ("src/core/shard.c", "    for (size_t r = 0; r < R && from < 0; r++)",
     "    for (size_t r = R; r-- > 0 && from < 0;)", ["check_dp"]),
    ("src/parallel/dp.c", "    h = rv_hash_u64(h, d->self->agree);", "    (void)d->self;", ["check_dp"]),
    ("src/parallel/dp.c", "def->n_micro, def->grad_frac_bits,", "1, def->grad_frac_bits,", ["check_dp"]),
    ("src/core/trainer.c",
     "            t->agree[step] = rv_hash_f64s(t->agree[step], t->hyper_values, opt->n_kinds);",
     "", ["check_dp"]),
    ("src/core/trainer.c", "t->n_steps, t->first_kept, t->frac_bits,", "t->n_steps, t->frac_bits,",
     ["check_dp"]),
    ("src/core/shard.c", "            if (vote[R + r] != vote[R])", "            if (0)", ["check_dp"]),
    ("src/parallel/dp.c", "        memset(d->hm, 0, nm * sizeof *d->hm);\n", "", ["check_dp"]),
    ("src/parallel/dp.c", "        memset(d->g, 0, n * sizeof *d->g);\n", "", ["check_dp"]),
    ("src/core/shard.c", "            if (vote[R + r] != vote[R])", "            if (0)", ["check_dp"]),
    ("src/parallel/dp.c", "        memset(d->hm, 0, nm * sizeof *d->hm);\n", "", ["check_dp"]),
    ("src/parallel/dp.c", "        memset(d->g, 0, n * sizeof *d->g);\n", "", ["check_dp"]),
    ("src/parallel/dp.c", "        memset(d->hv, 0, n * sizeof *d->hv);\n", "", ["check_dp"]),
    ("src/core/checkpoint.c", 'int rc = rv_trainer_enter(t, "revl_trainer_set_checkpoint");',
     "int rc = REVL_OK;", ["check_optim"]),
    ("python/revl/core.py", "        with _Busy((h,)):\n            rc = lib.trainer_set_checkpoint(",
     "        if True:\n            rc = lib.trainer_set_checkpoint(", [PY]),
    ("python/revl/hyperopt.py", "        with _Busy((h,)):   # a step or run on another thread",
     "        if True:   # a step or run on another thread", [PY]),
    ("python/revl/core.py", 'path = as_path(path, "path", "Trainer.set_checkpoint")',
     "path = str(path).encode()", [PY]),
    ("python/revl/core.py", 'every = as_int(every, "every", "Trainer.set_checkpoint", 1)',
     "every = every", [PY]),
    ("python/revl/torch/bridge.py", "            out[alias] = out[name]", "            pass", [PY]),
    # issue 24 item 24: the Python binding and the torch bridge
    ("python/revl/core.py", 'float("nan") if loss is None else float(loss)',
     "0.0 if loss is None else float(loss)", [PY]),
    ("python/revl/torch/bridge.py", "rng = np.random.default_rng([self.seed, epoch])",
     "rng = np.random.default_rng([self.seed, 0])", [PY]),
    ("python/revl/torch/bridge.py", "self.n_batches = n // self.batch_size",
     "self.n_batches = -(-n // self.batch_size)", [PY]),
    ("python/revl/torch/bridge.py", "if seen is not None and seen != _digest(g):",
     "if step and seen is not None and seen != _digest(g):", [PY]),
    # ---- revl.torch: batch-norm running statistics, frozen parameters, eval-mode evaluation
    # (test_torch_bn.py)
    # an out-of-order or reverse gradient call keeps its statistics update
    ("python/revl/torch/bridge.py", "        if step == last and self.stats_names:",
     "        if step >= 0 and self.stats_names:", [PY]),
    # any call at an earlier step (the reverse pass too) starts a new trajectory
    ("python/revl/torch/bridge.py", "            if step < last and self._stats_at[step] != key:",
     "            if step < last:", [PY]),
    # evaluation in training mode (batch statistics, dropout on)
    ("python/revl/torch/bridge.py", "with torch.random.fork_rng(devices=[], enabled=self.seed_rng), self._mode(False):",
     "with torch.random.fork_rng(devices=[], enabled=self.seed_rng), self._mode(True):", [PY]),
    # any buffer accepted as running statistics
    ("python/revl/torch/bridge.py", "            if isinstance(m, torch.nn.modules.batchnorm._NormBase) and bname in _STATS:",
     "            if True:", [PY]),
    # frozen parameters read from the module at every call instead of the copies
    ("python/revl/torch/bridge.py", "{**params, **self._const, **stats}", "{**params, **stats}", [PY]),
    # a resumed bridge keeps the statistics of steps after the checkpoint's
    ("python/revl/torch/bridge.py", "            stats = stats[:int(step) + 1]", "            stats = stats[:]", [PY]),
    # the oracle starts from the bridge's last statistics instead of the initial ones
    ("python/revl/torch/unrolled.py", "    stats = tm.initial_stats()", "    stats = tm.running_stats()", [PY]),
    # ---- reliability of the core (issue 24): allocation, checkpoint files, messages, ranges
    ("src/core/trainer.c", "                states_ok = 0;\n", "                ;\n",
     ["check_trainer"]),
    ("src/base/ckptfile.c", "            unlink(full);", "            (void)full;",
     ["check_checkpoint"]),
    ("src/base/ckptfile.c", "if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(", "if (fstat(",
     ["check_checkpoint"]),
    # a wide state out of range: refused by the loader, and by the reverse pass's range checks
    # on the state's difference, in the lanes and in the scalar code (test_wide_state_range)
    ("src/core/checkpoint.c", "size_t i = sv.elem == sizeof(rv_wide) ? wide_outside(r, p) : p;",
     "size_t i = p;", ["check_checkpoint"]),
    # the fused gradient + direction callback (revl_model_set_hvp_dir): never used, the
    # callback's own gradient copy not read, a misuse let through, set on a built-in model
    ("src/core/model.c", "    if (m->hvp_dir)\n        return user_hvp_dir(", "    if (0)\n        return user_hvp_dir(",
     ["check_optim"]),
    ("src/core/model.c", "    if (grad != u->grad)\n", "    if (0)\n", ["check_optim"]),
    ("src/core/model.c", "    if (u.calls != 1)", "    if (u.calls > 2)", ["check_optim"]),
    ("src/core/model.c", "    if (u.null_grad)\n", "    if (0)\n", ["check_optim"]),
    ("src/core/model.c", "    if (!m->from_callbacks)", "    if (0)", ["check_mlp"]),
    ("python/revl/core.py", "            if not calls:\n", "            if False:\n", [PY]),
    ("python/revl/torch/bridge.py", "hvp_affine=self.hvp_affine, hvp_dir=self.hvp_dir)",
     "hvp_affine=self.hvp_affine)", [PY]),
    # the gather's bytes (data/pixels.h): the table's divisor and its last quarter, the lanes'
    # second eight, a subset's first example, kept after x was standardised, the wrong example's
    # row
    ("src/data/pixels.c", "#define PX1(v) (v) / 255.0", "#define PX1(v) (v) / 256.0",
     ["check_dataset"]),
    ("src/data/pixels.c", "PX64(128), PX64(192)}", "PX64(128), PX64(128)}", ["check_dataset"]),
    ("src/data/pixels.c", "div255_8(_mm512_extracti64x4_epi64(w, 1))",
     "div255_8(_mm512_castsi512_si256(w))", ["check_dataset"]),
    ("src/data/pixels.c", "return _mm512_fmadd_pd(_mm512_fnmadd_pd(q, d, v), r, q);",
     "return q;", ["check_dataset"]),
    ("src/data/dataset.c", "memcpy(np, src->pixels + first * src->dim,", "memcpy(np, src->pixels,",
     ["check_dataset"]),
    ("src/data/dataset.c", "    drop_pixels(d);\n    rv_free(&d->alloc, mean);",
     "    rv_free(&d->alloc, mean);", ["check_dataset"]),
    ("src/models/mlp_batch.c", "rv_pixels_to_double(m->xb + r * dim, pixels + i * dim, dim);",
     "rv_pixels_to_double(m->xb + r * dim, pixels + r * dim, dim);", ["check_dataset"]),
    # the prefetch reading the permutation past the batch: past the array in an epoch's last
    # batch (check_dataset's guarded allocator makes that a fault without ASan)
    ("src/models/mlp_batch.c", "            if (r + PREFETCH_AHEAD < m->batch)", "            if (1)",
     ["check_dataset"]),
    # vmath's lanes (base/vmath_lanes.h): the widest code not chosen, the R-pass's second term,
    # ReLU's zero for -0, the column sums and the axpy; the penalty's sums and its value
    ("src/base/vmath.c", "if (cap >= 8 && __builtin_cpu_supports(\"avx512f\")",
     "if (cap > 8 && __builtin_cpu_supports(\"avx512f\")", ["check_vmath"]),
    ("src/base/vmath.c", "if (cap >= 4 && __builtin_cpu_supports(\"avx2\"))",
     "if (__builtin_cpu_supports(\"avx2\"))", ["check_vmath"]),
    ("src/base/vmath_lanes.h", "(L(splat)(1.0) - h * h) - L(splat)(2.0) * h * dz * rz)",
     "(L(splat)(1.0) - h * h) + L(splat)(2.0) * h * dz * rz)", ["check_vmath", "check_mlp"]),
    ("src/base/vmath_lanes.h", "return L(sel)(x > L(splat)(0.0), x, L(splat)(0.0)); }",
     "return L(sel)(x >= L(splat)(0.0), x, L(splat)(0.0)); }", ["check_vmath"]),
    ("src/base/vmath_lanes.h", "            acc = acc + x;", "            acc = x;",
     ["check_vmath", "check_mlp"]),
    ("src/base/vmath_lanes.h", "            acc = acc + d[r * n + j];", "            acc = d[r * n + j];",
     ["check_vmath", "check_mlp"]),
    ("src/base/vmath_lanes.h", "y = y + L(splat)(a) * x;", "y = y - L(splat)(a) * x;",
     ["check_vmath", "check_mlp"]),
    ("src/base/vmath_lanes.h", "VD v = a + b * g;", "VD v = a + b * a;", ["check_vmath", "check_mlp"]),
    ("src/base/vmath_lanes.h", "((p[4] + p[5]) + (p[6] + p[7]))", "((p[4] + p[5]) + p[6])",
     ["check_vmath", "check_mlp"]),
    ("src/base/vmath_lanes.h", "        p[j] += a[i] * b[i];", "        p[0] += a[i] * b[i];",
     ["check_vmath"]),
    ("src/models/mlp.c", "rv_mlp_penalty_grad(m, w, grad, loss != NULL);",
     "rv_mlp_penalty_grad(m, w, grad, 0);", ["check_mlp"]),
    # revl_blas_threads: a negative count let through, 0 setting instead of asking, the count
    # before not returned, nothing set (check_mlp's test_blas_threads; Python's as well)
    ("src/models/blas_threads.c", "    if (n < 0)\n        return REVL_ERR_INVALID;\n", "",
     ["check_mlp"]),
    ("src/models/blas_threads.c", "    if (n > 0)\n", "    if (n >= 0)\n", ["check_mlp"]),
    ("src/models/blas_threads.c", "    return before;\n", "    return n;\n", ["check_mlp"]),
    ("src/models/blas_threads.c", "        openblas_set_num_threads(n);\n", "        (void)n;\n",
     ["check_mlp"]),
    # a sharded trainer's refusal names the share's index, not the parameter's (check_dp's
    # sharded_reverse_checkpoint_resumes_bit_for_bit, case RK_FORGED_STATE)
    ("src/core/checkpoint.c", 'start ? "start " : "", sv.name, t->lo + i);',
     'start ? "start " : "", sv.name, i);', ["check_dp"]),
    ("src/exact/wide.h", "return x < lim && x > -lim;", "return x < lim && x >= -lim;",
     ["check_checkpoint"]),
    ("src/optim/rms_dir.h", "!rv_wide_add(*b, -gb, b))", "(*b -= gb, 0))", ["check_checkpoint"]),
    ("src/optim/rms_dir.c", "ok &= add8(sub, bl, bh, gbl, gbh, &bl, &bh);",
     "ok &= add8(sub, bl, bh, gbl, gbh, &bl, &bh) | (__mmask8)(sub ? 0xff : 0);",
     ["check_checkpoint"]),
    ("src/optim/adam.c", "if (!rv_wide_add(m[i], -gm, &m[i]) ||", "if ((m[i] -= gm, 0) ||",
     ["check_checkpoint"]),
    ("src/optim/adam_dir.c", "ok &= add8(sub, ml, mh, gml, gmh, &ml, &mh);",
     "ok &= add8(sub, ml, mh, gml, gmh, &ml, &mh) | (__mmask8)(sub ? 0xff : 0);",
     ["check_checkpoint"]),
    ("src/base/ckptfile.c", "    FILE *f = rv_open_regular(path, err);",
     '    FILE *f = fopen(path, "rb");', ["check_hardening"]),
    ("src/hyperopt/hyperopt_checkpoint.c",
     '    int rc = rv_hyperopt_not_in_step(h, "revl_hyperopt_checkpoint_load");',
     "    int rc = 0;", ["check_hardening"]),
    ("src/hyperopt/hyperopt_checkpoint.c", "    hh = rv_hash_u64(hh, o->seed);\n", "",
     ["check_checkpoint"]),    ("src/core/checkpoint.c", "    rv_ckpt_put_u64(w, t->sched_hash);",
     "    rv_ckpt_put_u64(w, rv_trainer_schedule_hash(t));", ["check_checkpoint"]),    ("src/optim/optim.c", "        if (strtod(out, NULL) == value || isnan(value))", "        if (1)",
     ["check_errors", "check_optim"]),    ("src/data/dataset.c", "            sum += ldexp(r->x[i * dim + j], -e);",
     "            sum += r->x[i * dim + j];", ["check_dataset"]),
    ("src/data/dataset.c",
     "        double big = fmax(ldexp(hi, -e) - mean[j], mean[j] - ldexp(lo, -e)), ss = 0.0;",
     "        double big = fmax(hi - mean[j], mean[j] - lo), ss = 0.0;", ["check_dataset"]),    ("src/optim/adam_dir.h", "    return c->alpha * (mhat / d) * c->w_scale;",
     "    return c->alpha * c->w_scale * (mhat / d);", ["check_hardening"]),
    ("src/optim/rms_dir.h", "    return c->alpha * (rv_wide_to_double(b) * 0x1p-100) * c->w_scale;",
     "    return c->alpha * c->w_scale * (rv_wide_to_double(b) * 0x1p-100);", ["check_hardening"]),
    ("src/optim/adam_dir.h", "    t->du_deps[i] = d2 > 0 ? -e : 0.0;",
     "    t->du_deps[i] = -e;", ["check_hardening"]),
    ("src/optim/rms_dir.h", "(d2 > 0 ? -gi / d2 : 0.0)", "(-gi / d2)", ["check_hardening"]),    ("src/core/trainer.c", "rv_struct_size_check(NULL, RV_STRUCT_TRAINER_STATS, out->struct_size))",
     "out->struct_size < sizeof *out)", ["check_errors"]),
    # checkpoint loaders' structural checks, reached by files with a valid checksum
    ("src/core/checkpoint.c", "if (st < RV_STATE_LOW || st >> 63)", "if (st >> 63)",
     ["check_checkpoint"]),
    ("src/core/checkpoint.c", "if (st < RV_STATE_LOW || st >> 63)", "if (st < RV_STATE_LOW)",
     ["check_checkpoint"]),
    ("src/core/checkpoint.c", "if (broken > 1 || (deficit && len))", "if (deficit && len)",
     ["check_checkpoint"]),
    ("src/core/checkpoint.c", "if (broken > 1 || (deficit && len))", "if (broken > 1)",
     ["check_checkpoint"]),
    ("src/core/checkpoint.c",
     "if (*steps > t->n_steps || (*state == RV_TRAINED) != (*steps == t->n_steps))",
     "if ((*state == RV_TRAINED) != (*steps == t->n_steps))", ["check_checkpoint"]),
    ("src/core/checkpoint.c",
     "if (*steps > t->n_steps || (*state == RV_TRAINED) != (*steps == t->n_steps))",
     "if (*steps > t->n_steps)", ["check_checkpoint"]),
    ("src/core/checkpoint.c", "        if (!isfinite(m))", "        if (0)", ["check_checkpoint"]),
    ("src/core/checkpoint.c", "    if (!rc && r->pos != r->end)", "    if (0)", ["check_checkpoint"]),
    ("src/core/checkpoint.c", "    if (*state != RV_PARTIAL && *state != RV_TRAINED && !reversing)",
     "    if (0)", ["check_checkpoint"]),    ("src/hyperopt/hyperopt_checkpoint.c", "if (counts[3] > 1 || counts[4] > 1 ||",
     "if (counts[4] > 1 ||", ["check_checkpoint"]),
    ("src/hyperopt/hyperopt_checkpoint.c", " || counts[1] > counts[0] + 1 || counts[2] > counts[1])",
     " || counts[2] > counts[1])", ["check_checkpoint"]),
    ("src/hyperopt/hyperopt_checkpoint.c", "        !isfinite(scalars[1]) || !(scalars[2] >= 0))",
     "        !isfinite(scalars[1]))", ["check_checkpoint"]),
    ("src/hyperopt/hyperopt_checkpoint.c", "        if (!isfinite(tmp[i]) && !unset_clip(h, i, tmp[i]))",
     "        if (0)",
     ["check_checkpoint"]),
    ("src/hyperopt/hyperopt_checkpoint.c",
     "        (counts[3] && rv_hyperopt_check_theta(h, tmp + h->n_theta) != REVL_OK) ||\n", "",
     ["check_checkpoint"]),    # the coder's broken state
    ("src/exact/infobuf.h", "        if (w != 0)\n            s->broken = 1;",
     "        if (w > 1)\n            s->broken = 1;", ["check_infobuf"]),
    ("src/exact/infobuf.c", "        s->broken = s->nomem = 0;", "        s->nomem = 0;",
     ["check_infobuf"]),    # truncation: the multiplies of the steps whose bits are not kept round to nearest
    ("src/exact/round_vec.h", "((r * n + 0x8000) >> 16)", "((r * n) >> 16)", ["check_round_vec", "check_trainer"]),
    ("src/exact/wide.h", "((r * n + (1ull << (bits - 1))) >> bits)", "((r * n) >> bits)",
     ["check_wide"]),    # verification at the end of the reverse pass and of its directions
    ("src/core/reverse.c",
     "    for (size_t i = 0; i < t->n_local; i++)\n        if (w[i] != t->w_start[i])",
     "    for (size_t i = 0; i + 1 < t->n_local; i++)\n        if (w[i] != t->w_start[i])",
     ["check_optim"]),
    ("src/core/reverse.c", "(t->dir_b && !finite_all(t->dir_b, t->n_params)))", "0)",
     ["check_optim"]),    # a gradient below s's resolution still increments s by one unit
    ("src/optim/adam.c", "    if (*gs == 0 && g != 0)\n        *gs = 1;",
     "    if (*gs == 0 && g != 0)\n        *gs = 0;", ["check_optim", "check_hardening", PY]),
    ("src/optim/rms_dir.h", "    if (*gs == 0 && g != 0)\n        *gs = 1;",
     "    if (*gs == 0 && g != 0)\n        *gs = 0;", ["check_optim", "check_hardening", PY]),
    ("src/optim/adam_dir.c", "_mm512_cmp_pd_mask(y2, one, _CMP_LT_OQ));",
     "_mm512_cmp_pd_mask(y2, zero, _CMP_LT_OQ));", ["check_adam_dir"]),
    # ---- the Python tuner binding (python/revl/tuner.py, mlp.py)
    ("python/revl/tuner.py", "return cls(PHASES.get(r.phase, str(r.phase)), int(r.index), r.loss, r.best_loss,",
     "return cls(PHASES.get(r.phase, str(r.phase)), int(r.index), r.best_loss, r.loss,", [PY]),
    ("python/revl/tuner.py", "_store_result(dtheta_p, n_theta, fn(theta, dz), \"dtheta\", \"vjp\")",
     "_store_result(dtheta_p, n_theta, fn(theta, -dz), \"dtheta\", \"vjp\")", [PY]),
    ("python/revl/tuner.py", "        history.append(r)\n", "        pass\n", [PY]),
    ("python/revl/mlp.py", "return out[:count.value].astype(np.int64)",
     "return out[:count.value - 1].astype(np.int64)", [PY]),
    # ---- the torch oracle's AdamW (python/revl/torch/unrolled.py): decay after Adam's step,
    # coupled decay (added to the gradient, as Adam's weight_decay), the decay without alpha
    ("python/revl/torch/unrolled.py",
     "        return adam(t, (1 - alpha[t] * weight_decay[t]).repeat_interleave(reps) * w, g)",
     "        return (1 - alpha[t] * weight_decay[t]).repeat_interleave(reps) * adam(t, w, g)",
     [PY]),
    ("python/revl/torch/unrolled.py",
     "        return adam(t, (1 - alpha[t] * weight_decay[t]).repeat_interleave(reps) * w, g)",
     "        return adam(t, w, g + weight_decay[t].repeat_interleave(reps) * w)", [PY]),
    ("python/revl/torch/unrolled.py",
     "        return adam(t, (1 - alpha[t] * weight_decay[t]).repeat_interleave(reps) * w, g)",
     "        return adam(t, (1 - weight_decay[t]).repeat_interleave(reps) * w, g)", [PY]),
    # ---- messages (issue 24): a built-in model's own fault is not "callback returned 1", NaN
    # said once, the hypergradient's one prefix is the entry called
    ("src/core/model.c", "    if (m->fail_note && m->fail_note[0])", "    if (0)",
     ["check_errors", "check_mlp"]),
    ("src/parallel/dp.c", "        if (isnan(x[i])) { /* said once", "        if (0) { /* said once",
     ["check_dp"]),
    ("src/core/trainer.c", "        if (isnan(w0[i])) /* not", "        if (0) /* not",
     ["check_errors"]),
    ("src/core/reverse.c", "hypergrad_entry(t, \"revl_trainer_hypergrad_kinds\", dfdw",
     "hypergrad_entry(t, \"revl_trainer_hypergrad\", dfdw", ["check_errors"]),
    ("src/parallel/dp.c", "            if (why && why[0])", "            if (0)", ["check_dp"]),
    # ---- checkpoints during the reverse pass (src/core/checkpoint.c, reverse.c; the adjoints)
    ("src/core/reverse.c", "        t->steps_done = step;\n        if (t->ckpt_path",
     "        t->steps_done = step + 1;\n        if (t->ckpt_path", ["check_checkpoint"]),
    ("src/optim/adam.c", "    return k < 4 ? arrays[k] : NULL;", "    return k < 3 ? arrays[k] : NULL;",
     ["check_checkpoint"]),
    ("src/optim/momentum.c", "    return k == 0 ? o->dv : NULL;", "    return NULL;",
     ["check_checkpoint"]),
    ("src/core/checkpoint.c", "    take_f64s(r, apply ? t->dmeta : NULL, t->n_meta);",
     "    take_f64s(r, NULL, t->n_meta);", ["check_checkpoint"]),
    ("src/core/checkpoint.c", "    if (kinds >> (opt->n_kinds + 1))", "    if (0)",
     ["check_checkpoint"]),
    ("src/core/checkpoint.c", "    if (!(dfdw_max >= 0) || !isfinite(dfdw_max))",
     "    if (!isfinite(dfdw_max))", ["check_checkpoint"]),
    ("src/core/checkpoint.c", "    int reversing = *state == RV_REVERSING && rev_file;",
     "    int reversing = *state == RV_REVERSING;", ["check_checkpoint"]),
    ("src/core/checkpoint.c", "    if (rev_file && !reversing)", "    if (0)",
     ["check_checkpoint"]),
    ("src/core/reverse.c", "        if (user_out[k] && !(t->rev_kinds >> k & 1))", "        if (0)",
     ["check_checkpoint"]),
    ("src/core/reverse.c", "    if (t->state != RV_REVERSING)\n", "    if (0)\n", ["check_checkpoint"]),
    ("python/revl/core.py", "                                              ptr(r.meta) if self.n_meta else None)",
     "                                              None)", [PY]),
    # ---- layers (issue 23 item 3): a lower layer reaching up, an include cycle
    ("src/models/mlp.h", '#include "core/model.h"\n',
     '#include "core/model.h"\n#include "parallel/dp.h"\n', ["py:test_layers.py"]),
    ("src/core/model.h", '#include "base/internal.h"\n',
     '#include "base/internal.h"\n#include "core/trainer.h"\n', ["py:test_layers.py"]),
    # ---- the Python package carries its library (issue 23, item 6): pip's build copies it into
    # the package, and the lookup tries that copy after REVL_LIBRARY, before the system loader
    ("python/setup.py", "        shutil.copyfile(build_library(ROOT), dest / SONAME)",
     "        build_library(ROOT)", [PY]),
    ("python/revl/_lib.py",
     '    dll = _try_file(path, "the package was not installed by pip from a checkout", tried)',
     "    dll = None", [PY]),
    ("python/setup.py", 'NATIVE = "_native"', 'NATIVE = "native"', [PY]),
    # ---- bindings learn the optimisers from the library (issue 23, item 2): the learn bit of a
    # kind, the Python table built from it, and Revl.jl's tables (test_julia_signatures must
    # refuse a table of its own, a kind code compared with a number, a registry never read)
    ("src/hyperopt/coords.c", "    return rv_kind_learn_bit(kind);\n}",
     "    return rv_kind_learn_bit(kind) << 1;\n}", ["check_hyperopt"]),
    ("python/revl/hyperopt.py", "    LEARN.update({k: lib.hyper_learn_bit(c) for k, c in KINDS.items()})",
     "    LEARN.update({k: lib.hyper_learn_bit(c) for k, c in KINDS.items() if c < 5})", [PY]),
    ("julia/Revl.jl", "const KINDS = Dict{Symbol,Int}()",
     "const KINDS = Dict{Symbol,Int}(:alpha => 0, :gamma => 1)", [PY]),
    ("julia/Revl.jl", "    if all(KINDS[k] < SHIPPED_KINDS for k in s.kinds)",
     "    if all(KINDS[k] < 5 for k in s.kinds)", [PY]),
    ("julia/Revl.jl", "    _learn_registry!()      # the optimisers", "    nothing      # the optimisers",
     [PY]),
    # ---- gradient clipping by global norm (src/core/clip.c, the driver's REVL_HYPER_CLIP)
    ("src/core/clip.c", "    if (f != 0)\n", "    if (0)\n", ["check_clip"]),  # rank-one term
    ("src/core/clip.c", "    for (size_t i = 0; i < t->n_params; i++)\n        sq +=",
     "    for (size_t i = t->offsets_all[1]; i < t->n_params; i++)\n        sq +=",
     ["check_clip"]),  # one group's norm instead of the global one
    ("src/core/clip.c", "                d_tau[k] -= s / ne;", "                d_tau[k] -= c * s / ne;",
     ["check_clip"]),
    ("src/core/clip.c", "            t->clip_dir[i] = c < 1 ? c * v[i] : v[i];",
     "            t->clip_dir[i] = v[i];", ["check_clip"]),
    ("src/core/clip.c", "#define RV_CLIP_EPS 1e-6", "#define RV_CLIP_EPS 0.0", ["check_clip"]),
    ("src/core/reverse.c", "    rv_clip_grad(t, step);\n", "\n", ["check_clip"]),  # not in reverse
    ("src/core/trainer.c", "        if (rv_clip_active(t, step))\n            rv_clip_grad",
     "        if (0)\n            rv_clip_grad", ["check_clip"]),
    ("src/optim/optim.c", "        return value > 0 ? value : NAN; /* +inf",
     "        return value >= 0 ? value : NAN; /* +inf", ["check_clip"]),
    ("src/core/checkpoint.c", "    for (size_t k = 0; k <= t->opt->n_kinds; k++) /* and the clip's",
     "    for (size_t k = 0; k < t->opt->n_kinds; k++) /* and the clip's", ["check_clip"]),
    ("src/core/clip.c", "    const double *tau = t->clip_tau + step * t->n_groups;",
     "    const double *tau = rv_schedule_values(t->sched, REVL_HYPER_CLIP) + step * t->n_groups;",
     ["check_clip"]),  # the schedule as it is now, not as trained
    ("python/revl/core.py", "        kinds = self.schedule.kinds + self.schedule._active_driver_kinds(h.deps[1])",
     "        kinds = self.schedule.kinds", [PY]),
    ("python/revl/torch/unrolled.py", "torch.where(finite & (ratio < 1), ratio,",
     "torch.where(finite, ratio,", [PY]),  # the oracle clips up too
    ("src/core/clip.c", "    if (t->sharded)\n", "    if (0)\n", ["check_clip"]),
    # ---- one trainer, two threads (issue 24 item 2): every call takes the in-use guard
    ("src/core/progress.c", "    return rv_trainer_enter(t, call) == REVL_OK ? 0 : -1;",
     "    return rv_trainer_enter(t, call) == REVL_OK ? 0 : 1;", ["check_threads"]),
    ("src/core/trainer.c", "    if (held < 0)\n        return REVL_ERR_STATE;\n    out->steps_done",
     "    out->steps_done", ["check_threads"]),
    ("src/core/progress.c", '    int rc = rv_trainer_enter(t, "revl_trainer_set_progress");',
     "    int rc = REVL_OK;", ["check_threads"]),
    ("python/revl/core.py",
     "        with _Busy((h,)):   # another thread's train: refused, not read mid-step",
     "        if 1:", [PY]),
    # ... but the running call's own progress callback may read (C and Python)
    ("src/core/progress.c", "    if (in_progress_of == t)\n        return 1;", "", ["check_forward"]),
    ("python/revl/core.py", '        if getattr(self._progress_here, "active", False):',
     "        if False:", [PY]),
    # ---- coupled weight decay of momentum and RMSprop (optim.h's rv_coupled_grad, momentum.c,
    # rmsprop.c): the lambda w term dropped, its adjoint dropped, decoupled instead, d lambda's sign
    ("src/optim/optim.h", "    return lambda != 0 ? g + lambda * wd : g;", "    return g;",
     ["check_optim"]),
    ("src/optim/momentum.c", "            dw[k] -= lambda * u[k];", "            ;",
     ["check_optim"]),
    # momentum's reverse: dv's adjoint without alpha; v moved the wrong way in the lanes, or
    # without the coupled decay there (the scalar loop has it: lanes against plain must differ)
    ("src/optim/momentum.c", "dv[k] += alpha * dw[k];", "dv[k] += dw[k];", ["check_optim"]),
    ("src/optim/momentum.c", "j += rv_adam_moves(+1, 1.0,", "j += rv_adam_moves(-1, 1.0,",
     ["check_optim"]),
    # the mover's lanes writing a double copy that momentum's velocity does not have (NULL)
    ("src/optim/adam_dir.c", "        if (wd)\n            _mm512_mask_storeu_pd(wd + i",
     "        _mm512_mask_storeu_pd(wd + i", ["check_optim"]),
    ("src/optim/momentum.c",
     "y[k] = sg.omg_fixed * rv_coupled_grad(grad[c0 + k], sg.lambda, wd[c0 + k]);",
     "y[k] = sg.omg_fixed * grad[c0 + k];", ["check_optim"]),
    ("src/optim/momentum.c", "y[k] = alpha * (double)o->v[c0 + k];",
     "y[k] = alpha * (double)o->v[c0 + k] * 1.0000001;", ["check_optim"]),
    ("src/optim/rms_dir.h", "        r->dw[i] -= c->lambda * r->u[i];", "        ;",
     ["check_optim"]),
    ("src/optim/momentum.c",
     "                    decayed[i - c0] = rv_coupled_grad(grad[i], sg.lambda, wd[i]);",
     "                    decayed[i - c0] = grad[i], w[i] -= (int64_t)(sg.alpha * sg.lambda * (double)w[i]);",
     ["check_optim"]),
    ("src/optim/rmsprop.c", "            d_kinds[K_LAMBDA][k] = -sum[SLOT_DECAY];",
     "            d_kinds[K_LAMBDA][k] = sum[SLOT_DECAY];", ["check_optim"]),
    # the files and coordinates of the decay (old files load, no decay has a finite z)
    ("src/core/checkpoint.c", "        if (shipped && k >= shipped && zero)", "        if (0)",
     ["check_checkpoint"]),
    ("src/hyperopt/hyperopt_io.c",
     "    if (h->opt->id == REVL_OPTIM_MOMENTUM && later_kinds_zero(h, src)) {",
     "    if (h->opt->id == REVL_OPTIM_MOMENTUM) {", ["check_hyperopt"]),
    ("src/hyperopt/hyperopt_io.c", "        if (fseek(lx->f, pos, SEEK_SET) != 0)",
     "        if (0)", ["check_hyperopt"]),
    ("src/hyperopt/coords.c",
     "        return x > 0 ? fmax(log(x), -RV_LOG_ALPHA_MAX) : -RV_LOG_ALPHA_MAX;",
     "        return log(x);", ["check_family", "check_tuner"]),
    ("src/hyperopt/tuner.c", "           (t->opt->id == REVL_OPTIM_ADAMW ? REVL_LEARN_WEIGHT_DECAY : 0) |",
     "           REVL_LEARN_WEIGHT_DECAY |", ["check_tuner"]),
    # ---- learned log clip (REVL_LEARN_CLIP): hyper-optimiser, families, tuner
    ("src/hyperopt/hyperopt.c", "        d_kinds[REVL_HYPER_CLIP] = h->grad + h->clip_off;",
     "        d_kinds[REVL_HYPER_CLIP] = NULL;", ["check_hyperopt"]),
    ("src/hyperopt/hyperopt.c", "        if (b[j].kind < 0)\n            continue;",
     "        if (b[j].kind < 0 || b[j].kind == REVL_HYPER_CLIP)\n            continue;",
     ["check_hyperopt"]),  # the log-clip chain factor dropped
    ("src/hyperopt/hyperopt.c", "        if (!isfinite(clip[k]))\n", "        if (0)\n",
     ["check_hyperopt"]),  # +inf check removed
    ("src/hyperopt/hyperopt_io.c", "    if (h->clip_off != SIZE_MAX) { /* learned only",
     "    if (0) { /* learned only", ["check_hyperopt"]),
    ("src/hyperopt/family_layout.c", "        f->th_kind[f->n_kinds] = n;", "        f->th_kind[f->n_kinds] = 0;",
     ["check_family"]),
    ("src/hyperopt/tuner.c", "        t->dz[t->z_clip + k] *= rv_from_unconstrained(RV_COORD_LOG, z[t->z_clip + k]);",
     "        t->dz[t->z_clip + k] *= 1.0;", ["check_tuner"]),
    ("src/hyperopt/tuner.c", "    if (t->z_clip != SIZE_MAX) {\n        double *x = t->dz;",
     "    if (0) {\n        double *x = t->dz;", ["check_tuner"]),
    ("python/revl/hyperopt.py", "        if kind not in self.kinds + self.driver_kinds:",
     "        if kind not in self.kinds:", [PY]),  # HyperOpt cannot read or set the clip
    # ---- sharded checkpoints (src/core/checkpoint.c: one file per rank, all or none): the
    # writer reading n_params entries of the share's arrays (issue 24 item 8), another share of
    # w written, no vote before the renames, a rank applying its file before the ranks agreed,
    # the step left out of the agreement, the share's identity and w's hash unchecked
    ("src/core/checkpoint.c", "    size_t p = t->n_local; /* this rank's share (n_params unsharded) */",
     "    size_t p = t->n_params;", ["check_dp"]),
    ("src/core/checkpoint.c", "    rv_ckpt_put_ints(w, t->w + t->lo, 8, p);", "    rv_ckpt_put_ints(w, t->w, 8, p);",
     ["check_dp"]),
    ("src/core/checkpoint.c", "    rc = rv_shard_vote(t, rc);\n    if (written)", "    if (written)",
     ["check_dp"]),
    ("src/core/checkpoint.c", "        rc = agree_files(t, path, rc, v, state, steps);\n    if (!rc) {",
     "        agree_files(t, path, rc, v, state, steps);\n    if (!rc) {", ["check_dp"]),
    ("src/core/checkpoint.c", "    uint64_t word = rv_hash_u64(rv_hash_u64(v->alike, state), steps);",
     "    uint64_t word = rv_hash_u64(v->alike, state);", ["check_dp"]),
    ("src/core/checkpoint.c", "        if (x != mine[k])\n            return bad(t, r->path, \"this rank's",
     "        if (0)\n            return bad(t, r->path, \"this rank's", ["check_dp"]),
    ("src/core/checkpoint.c", "    if (!rc && w_hash(v->w, t->n_params) != v->w_hash)", "    if (0)",
     ["check_dp"]),
    # ---- exact/ratio.h, AdamW's decay as ceil(rho W) (adamwperf): the fast path's fiber tests
    # (a lower member not recorded; the reverse's test without the offset), the reciprocal
    # division's first correction, the general path's code, the offset, the cost
    ("src/exact/ratio.h", "if (fr < r->k || fr >= r->d)", "if (fr < r->k)", ["check_ratio"]),
    ("src/exact/ratio.h", "if ((uint64_t)(lo + 1) * r->k + r->h >= r->k)",
     "if ((uint64_t)(lo + 1) * r->k >= r->k)", ["check_ratio"]),
    ("src/exact/ratio.h", "    q1 += over;\n    rr += over & d;\n", "    q1 += over;\n", ["check_ratio"]),
    ("src/exact/ratio.h", "*st = rv_push_base_n(al, s, *st, n == r->n0.n ? &r->n0 : &r->n1,",
     "*st = rv_push_base_n(al, s, *st, &r->n1,", ["check_ratio"]),
    ("src/exact/ratio.h", "    r->h = r->d >> 1;\n", "    r->h = 0;\n", ["check_ratio", "check_optim"]),
    ("src/exact/ratio.h", "return share * log2(n0 + 1) + (1 - share) * log2(n0);",
     "return share * log2(n0 + 1);", ["check_ratio"]),
    # ---- a sharded trainer's reverse-pass checkpoints (shardrev): a rank writing or reading
    # rank 0's share of dw, the reverse pass written as version 3 or not at all, the reverse
    # section's alike part (hypergradients so far) left out of the agreement, resume's checks
    # not voted (one rank refuses, the others wait: check_dp times out)
    ("src/core/checkpoint.c", "    rv_ckpt_put_f64s(w, t->dw + t->lo, t->n_local);",
     "    rv_ckpt_put_f64s(w, t->dw, t->n_local);", ["check_dp"]),
    ("src/core/checkpoint.c", "    take_f64s(r, apply ? t->dw + t->lo : NULL, t->n_local);",
     "    take_f64s(r, apply ? t->dw : NULL, t->n_local);", ["check_dp"]),
    ("src/core/checkpoint.c", "MAGIC, reverse ? SHARDED_REV : SHARDED, t->err)", "MAGIC, SHARDED, t->err)",
     ["check_dp"]),
    ("src/core/checkpoint.c", "    return save_file(t, path, 1);",
     "    return t->sharded ? REVL_OK : save_file(t, path, 1);", ["check_dp"]),
    ("src/core/checkpoint.c", "        v->alike = hash_words(r, kinds_at, (r->pos - kinds_at) / 8, h);",
     "        v->alike = h;", ["check_dp"]),
    ("src/core/reverse.c", "    int rc = rv_shard_vote(t, resume_checks(t, n_kinds, d_kinds, user_out));",
     "    int rc = resume_checks(t, n_kinds, d_kinds, user_out);", ["check_dp"]),
    # ---- the built-in MLP's one-pass reverse (rmsfuse: rv_model_hvp_dir): the R-pass along the
    # stale direction (before the trainer's callback), the hook gone (two passes), the mixed
    # product dropped, the fallback's direction skipped, the fingerprint unchecked before the
    # direction (unclipped, clipped), the clipped step's product along the unclipped direction
    ("src/models/mlp.c", "    int rc = dir(ctx, grad);\n    if (rc)\n        return rc;\n    return hv_after_gradient(m, w, v, x, hv_w, hv_meta);\n",
     "    hv_after_gradient(m, w, v, x, hv_w, hv_meta);\n    int rc = dir(ctx, grad);\n    if (rc)\n        return rc;\n    return 0;\n",
     ["check_clip"]),
    ("src/models/mlp.c", ".hvp_dir = mlp_hvp_dir}", ".hvp_dir = NULL}", ["check_clip"]),
    ("src/core/model.c", "ctx, v, grad, hv_w,\n                                    m->def.n_meta ? hv_meta : NULL);",
     "ctx, v, grad, hv_w,\n                                    NULL);", ["check_clip"]),
    ("src/core/model.c", "    if (!rc)\n        rc = dir(ctx, grad);\n", "", ["check_clip"]),
    ("src/core/reverse.c", "    int rc = check_fingerprint(t, c->step);\n", "    int rc = REVL_OK;\n",
     ["check_clip"]),
    ("src/core/reverse.c", "    int rc = check_fingerprint(t, step);\n    if (rc != REVL_OK)\n        return c->rc = rc;\n",
     "    int rc = REVL_OK;\n", ["check_clip"]),
    ("src/core/reverse.c", "&c, clipped ? t->clip_dir : t->dir_a,", "&c, t->dir_a,", ["check_clip"]),

    # ---- exact/ratio_run.h, AdamW's decay over a run (adamwfast): W = 0 pushing at c > 1/3, the
    # pushed bit, pushes when nothing is kept, the sign's subtraction and offset, W = 0's
    # result and pop test in the reverse, the reverse's pop test, its addend for W < 0, its pop
    # order, its sum's term for W < 0; adamw.c's reverse given the block's dw, not the group's,
    # and taking the run for alpha lambda below 2^-65 (k = 0)
    ("src/exact/ratio_run.h", "return (((fr < k) | (fr >= r->d)) & ((wi | (int64_t)li) != 0)) |",
     "return ((fr < k) | (fr >= r->d)) |", ["check_ratio"]),
    ("src/exact/ratio_run.h", "(uint32_t)(upper >> j) & 1", "(uint32_t)1", ["check_ratio"]),
    ("src/exact/ratio_run.h", "if (keep)\n            rv_ratio_run_push",
     "if (1)\n            rv_ratio_run_push", ["check_ratio"]),
    ("src/exact/ratio_run.h", "uint64_t t = li - ((pl ^ sg) - sg);", "uint64_t t = li - (pl ^ sg);",
     ["check_ratio"]),
    ("src/exact/ratio_run.h", "(rv_uwide)xl * k + (r->h + (k & sg));", "(rv_uwide)xl * k + r->h;",
     ["check_ratio"]),
    ("src/exact/ratio_run.h", "*q1 = hi | ~nz;", "*q1 = hi;", ["check_ratio"]),
    ("src/exact/ratio_run.h", "((qlo + 2) * k + r->h < k)", "((qlo + 1) * k + r->h < k)",
     ["check_ratio"]),
    ("src/exact/ratio_run.h", "uint64_t a = (1 + bit) - (sg & (1 + 2 * bit));",
     "uint64_t a = (1 + bit) - (sg & 1);", ["check_ratio"]),
    ("src/exact/ratio_run.h", "unsigned j = 63u - (unsigned)__builtin_clzll(pops);",
     "unsigned j = (unsigned)__builtin_ctzll(pops);", ["check_ratio"]),
    ("src/exact/ratio_run.h", "ql) + (rv_uwide)(rv_wide)(int64_t)a;", "ql) + (rv_uwide)a;",
     ["check_ratio"]),
    ("src/optim/adamw.c", "p->dw + i0, o->unit, sg->rho);", "p->dw, o->unit, sg->rho);",
     ["check_optim"]),
    ("src/optim/adamw.c", "if (sg->decay && sg->code.fast) /* the usual",
     "if (sg->code.fast) /* the usual", ["check_optim"]),
    # ratio_lanes.c's IFMA forward: a partial product, the negative W's offset, pl's mask, the
    # lower members, W = 0, pushes without keep, lo's borrow, a carry
    ("src/exact/ratio_lanes.c", "            c3 = _mm512_madd52hi_epu64(c3, x2, k0);\n", "",
     ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "__m512i hh = _mm512_add_epi64(H, _mm512_and_si512(K, sg));",
     "__m512i hh = H;", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "_mm512_and_si512(c2, m20), 40)", "c2, 40)", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "(up | _mm512_cmpge_epu64_mask(fr, D))", "(up)", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "_mm512_test_epi64_mask(_mm512_or_si512(wv, lv),\n                                                             _mm512_or_si512(wv, lv))",
     "(__mmask8)0xff", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "if (keep)\n            rv_ratio_run_push",
     "if (1)\n            rv_ratio_run_push", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "sg), sg)),\n                _mm512_srai_epi64(t, LOW));",
     "sg), sg)),\n                _mm512_srli_epi64(t, LOW));",
     ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "            c1 = _mm512_add_epi64(c1, _mm512_srli_epi64(c0v, 52));\n",
     "", ["check_ratio"]),
    # its reverse: a partial product of the high word, the low word's carry, the first
    # correction's remainder, W = 0's q, the pop test, the addend for W < 0, the sum term's
    # carry, S's order, g not scaled
    ("src/exact/ratio_lanes.c", "    c1 = _mm512_madd52lo_epu64(c1, a1, b0);\n", "", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "q1 = _mm512_mask_add_epi64(q1, _mm512_cmplt_epu64_mask(q0, u0), q1, one);",
     "q1 = q1;", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "    rr = _mm512_mask_add_epi64(rr, over, rr, d);\n", "", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "_mm512_storeu_si512(q1 + j, _mm512_mask_mov_epi64(ones64, nz, hi));",
     "_mm512_storeu_si512(q1 + j, hi);", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "_mm512_add_epi64(qlo, _mm512_set1_epi64(2))",
     "_mm512_add_epi64(qlo, _mm512_set1_epi64(1))", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "_mm512_and_si512(sg, _mm512_add_epi64(one, _mm512_slli_epi64(bit, 1))));",
     "_mm512_and_si512(sg, one));", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "wh = _mm512_mask_add_epi64(wh, _mm512_cmplt_epu64_mask(wl, ql), wh, one);",
     "", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "for (j = m; j-- > 0;) /* S in the scalar order */",
     "for (j = 0; j < m; j++)", ["check_ratio"]),
    ("src/exact/ratio_lanes.c", "_mm512_storeu_pd(g + i, _mm512_mul_pd(gv, rh));", "",
     ["check_ratio"]),
    # ---- the rounded multiplies of steps whose bits are not kept, in lanes (round_vec.h): the
    # 64-bit shift made logical, the 128-bit carry dropped, the high word's shift off by one, the
    # rounding's half dropped; momentum's and Adam's calls given the wrong run or rate
    ("src/exact/round_lanes.h", "VU q = (VU)((VI)x >> 16), r = x & 0xffff;",
     "VU q = x >> 16, r = x & 0xffff;", ["check_round_vec"]),
    ("src/exact/round_lanes.h", "    yh -= (VU)((VI)(yl2 < t)); /* the carry: the comparison's mask is -1 */",
     "    ;", ["check_round_vec"]),
    ("src/exact/round_lanes.h", "VU ql = (lo >> bits) | (hi << (64 - bits))",
     "VU ql = (lo >> bits) | (hi << (63 - bits))", ["check_round_vec"]),
    ("src/exact/round_lanes.h", "VU t = (MULU(lo & low_mask, vn) + half) >> bits;",
     "VU t = (MULU(lo & low_mask, vn)) >> bits;", ["check_round_vec"]),
    ("src/optim/adam.c", "                    o->rounded.mul128(s + c0, c1 - c0, sg.code2.n, 24);",
     "                    o->rounded.mul128(s + c0, c1 - c0, sg.code1.n, 24);", ["check_optim"]),
    ("src/optim/momentum.c", "                    o->rounded.mul64(v + c0, c1 - c0, sg.code.n);",
     "                    o->rounded.mul64(v + c0, c1 - c0 - 1, sg.code.n);", ["check_optim"]),
    ("src/optim/rmsprop.c", "                    o->rounded.mul128(b + c0, c1 - c0, sg.code_gamma.n, 16);",
     "                    o->rounded.mul128(b + c0, c1 - c0, sg.code_gamma.n, 24);", ["check_optim"]),
    # ---- RMSprop's s and b in lanes (wide_lanes.h with the second moment's bits 16, wide_runs.h,
    # rmsprop.c; check_coder_vec compares them with the plain loop): the forward pushes a second
    # digit for bits 16 too
    ("src/exact/wide_lanes.h", "    if (bits == 24) { /* rv_push_bits(8) */",
     "    if (bits >= 16) { /* rv_push_bits(8) */", ["check_coder_vec"]),
    # the reverse pops an 8-bit digit for bits 16 too
    ("src/exact/wide_lanes.h", "    if (bits == 24)\n        u = ((u >> RV_SCALE_BITS) << 23)",
     "    if (bits >= 16)\n        u = ((u >> RV_SCALE_BITS) << 23)", ["check_coder_vec"]),
    # gamma's numerator allowed up to 2^24 in the lanes (frequency below 2^15: two words a symbol)
    ("src/exact/wide_runs.h", "c2p->n <= (1u << BITS2) && i + NL <= n;",
     "c2p->n <= (1u << 24) && i + NL <= n;", ["check_coder_vec"]),
    # RMSprop multiplies b by gamma as a beta (bits 24)
    ("src/optim/rmsprop.c", "o->moments = rv_moments16_run_select();",
     "o->moments = rv_moments_run_select();", ["check_pinned", "check_optim"]),
    # ---- RMSprop's state updates in lanes (rms_dir.c): the singular-s guard dropped, gb's legacy
    # rounding taken in lanes, the one-unit minimum of gs dropped, the decay's sign, alpha times
    # 2^frac_bits first (NaN for b = 0 at a huge alpha)
    ("src/optim/rms_dir.c", "            ok &= ~(_mm512_cmp_pd_mask(sa, zero, _CMP_EQ_OQ) & nonzero);",
     "            ok &= 0xff;", ["check_rms_dir"]),
    # gs's bound (it also refuses non-finite gradients) dropped
    ("src/optim/rms_dir.c", "        __mmask8 ok = _mm512_cmp_pd_mask(y2, big, _CMP_LT_OQ);",
     "        __mmask8 ok = 0xff;", ["check_rms_dir"]),
    ("src/optim/rms_dir.c", "_mm512_cmp_pd_mask(yb, m64, _CMP_GT_OQ)",
     "_mm512_cmp_pd_mask(yb, m64, _CMP_LT_OQ)", ["check_rms_dir"]),
    ("src/optim/rms_dir.c", "gsl, nonzero & _mm512_testn_epi64_mask(gs_or, gs_or)",
     "gsl, 0 & _mm512_testn_epi64_mask(gs_or, gs_or)", ["check_rms_dir"]),
    ("src/optim/rms_dir.c", "gi = _mm512_add_pd(gv, _mm512_mul_pd(lam,",
     "gi = _mm512_sub_pd(gv, _mm512_mul_pd(lam,", ["check_rms_dir", "check_optim"]),
    ("src/optim/rms_dir.c",
     "_mm512_mul_pd(_mm512_mul_pd(al, _mm512_mul_pd(wide8_double(bl, bh), unit)), ws));",
     "_mm512_mul_pd(_mm512_mul_pd(al, ws), _mm512_mul_pd(wide8_double(bl, bh), unit)));",
     ["check_rms_dir"]),
    # rmsprop.c: a failure recorded before the chunk's moves: reported before an earlier weight
    # failure of its chunk
    ("src/optim/rmsprop.c",
     "            if (c0 + rv_pass_move_w_run(p, blk, lanes, -1, c0, j - c0, y) < j)",
     "            if (j < c1) rms_forward_fail(blk, &sg, rv_rms_add1(&c, p->grad[j], p->wd[j], "
     "&s[j], &b[j], NULL), j, p->grad[j], p->wd[j]);\n"
     "            if (c0 + rv_pass_move_w_run(p, blk, lanes, -1, c0, j - c0, y) < j)",
     ["check_optim"]),
    # rms_dir.c's direction run in lanes: the decay's adjoint dropped, the d^2 = 0 guard let through
    ("src/optim/rms_dir.c",
     "_mm512_sub_pd(_mm512_loadu_pd(r->dw + i), _mm512_mul_pd(lam, u)));",
     "_mm512_loadu_pd(r->dw + i));", ["check_optim", "check_rms_dir"]),
    ("src/optim/rms_dir.c",
     "__m512d de = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(d2, zero, _CMP_GT_OQ), zero,",
     "__m512d de = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(d2, zero, _CMP_GE_OQ), zero,",
     ["check_rms_dir"]),
]


def sh(cmd, cwd, timeout=None):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


# The pytest files that test a Python source, run first for its mutants ("py:" suites): the
# whole suite (PY) runs only when they let a mutant through, so a mutant costs seconds, not the
# minute of every Python test.
PY_TESTS = {
    "python/revl/tuner.py": "test_tuner.py",
    "python/revl/optuna.py": "test_tuner.py",
    "python/revl/mlp.py": "test_mlp.py,test_tuner.py",
    "python/revl/hyperopt.py": "test_hyperopt.py,test_hyperopt_optim.py,test_threads.py",
    "python/revl/data.py": "test_dataset.py",
    "python/setup.py": "test_install.py",
    "python/revl/_lib.py": "test_library_lookup.py,test_install.py",
    "julia/Revl.jl": "test_julia_signatures.py",
    "python/revl/_base.py": "test_hardening.py,test_errors.py",
    "python/revl/core.py": "test_clip.py,test_hypergrad.py,test_optimizers.py,test_checkpoint.py,"
                           "test_forward.py,test_threads.py,test_hardening.py",
    "python/revl/torch/bridge.py": "test_torch.py,test_torch_bn.py,test_torch_adamw.py",
    "python/revl/torch/unrolled.py": "test_torch.py,test_torch_bn.py,test_torch_adamw.py,"
                                     "test_torch_clip.py",
}


def first_suites(path, first):
    """The suites a mutant of path tries first: its own list, with a Python source's own test
    files put before the whole Python suite."""
    files = PY_TESTS.get(path)
    if not files or PY not in first:
        return first
    i = first.index(PY)
    return first[:i] + ["py:" + files] + first[i:]


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
    if name != PY and not name.startswith("py:") and not build(jobs, (f"build/tests/{name}",))[0]:
        return False
    try:
        if name == PY or name.startswith("py:"):
            lib = next((TREE / "lib").glob("librevl.so.*.*.*"))
            env["REVL_LIBRARY"] = str(lib)
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file must not meet a stale .pyc
            tests = ["tests"] if name == PY else ["tests/" + f for f in name[3:].split(",")]
            r = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-x", "-p",
                                "no:cacheprovider", *tests], cwd=TREE / "python", env=env,
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
    ap.add_argument("--shard", default="0/1",
                    help="K/N: mutants K, K+N, K+2N, ... in a tree of its own "
                         "(build-mutants-K/), so that N processes share the list")
    a = ap.parse_args()
    k, n = (int(x) for x in a.shard.split("/"))
    if not 0 <= k < n:
        ap.error("--shard K/N needs 0 <= K < N")
    if n > 1:
        global WORK, TREE
        WORK = ROOT / f"build-mutants-{k}"
        TREE = WORK / "tree"
    chosen = [m for i, m in enumerate(MUTANTS) if a.only in m[0] + m[1] and i % n == k]
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
            first = first_suites(path, first)
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
