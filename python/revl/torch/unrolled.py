"""PyTorch's own hypergradient of a revl run: the same optimiser unrolled on the autograd tape
and differentiated in reverse mode (memory grows with every step).  The reference the bridge is
tested against and benchmarked with; written from the method (docs/method.md, s. 1, "Adam,
exactly", "AdamW, exactly" and "Coupled weight decay") and torch.optim.Adam's, AdamW's, SGD's and
RMSprop's documented updates.
"""

import types

import numpy as np
import torch

from .._base import beta_applied, gamma_applied

_KINDS = {"momentum": ("alpha", "gamma", "weight_decay"),
          "adam": ("alpha", "beta1", "beta2", "eps"),
          "rmsprop": ("alpha", "gamma", "beta2", "eps", "weight_decay"),
          "adamw": ("alpha", "beta1", "beta2", "eps", "weight_decay")}
# coupled weight decay (torch.optim.SGD's and RMSprop's): optional, 0 when not given
_OPTIONAL_ZERO = {("momentum", "weight_decay"), ("rmsprop", "weight_decay")}


def _momentum(alpha, gamma, weight_decay, reps):
    v = 0

    def step(t, w, g):
        nonlocal v
        a = alpha[t].repeat_interleave(reps)
        c = gamma[t].repeat_interleave(reps)
        g = g + weight_decay[t].repeat_interleave(reps) * w    # coupled: g and w at w_t
        v = c * v - (1 - c) * g
        return w + a * v
    return step


def _rmsprop(alpha, gamma, beta2, eps, weight_decay, reps):
    s = b = 0

    def step(t, w, g):
        nonlocal s, b
        g = g + weight_decay[t].repeat_interleave(reps) * w    # coupled, as torch.optim.RMSprop
        b2 = beta2[t].repeat_interleave(reps)
        s = b2 * s + (1 - b2) * g * g
        denom = torch.sqrt(s) + eps[t].repeat_interleave(reps)
        b = gamma[t].repeat_interleave(reps) * b + g / denom
        return w - alpha[t].repeat_interleave(reps) * b
    return step


def _adam(alpha, beta1, beta2, eps, reps):
    # bias correction with per-step betas: c_t = 1 - prod_{k <= t} beta_k (per group)
    c1, c2 = 1 - torch.cumprod(beta1, 0), 1 - torch.cumprod(beta2, 0)
    m = s = 0

    def step(t, w, g):
        nonlocal m, s
        b1, b2 = beta1[t].repeat_interleave(reps), beta2[t].repeat_interleave(reps)
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        # torch.optim.Adam: w -= (alpha / c1) m / (sqrt(s) / sqrt(c2) + eps)
        denom = torch.sqrt(s) / torch.sqrt(c2[t]).repeat_interleave(reps) \
            + eps[t].repeat_interleave(reps)
        return w - (alpha[t] / c1[t]).repeat_interleave(reps) * m / denom
    return step


def _adamw(alpha, beta1, beta2, eps, weight_decay, reps):
    adam = _adam(alpha, beta1, beta2, eps, reps)

    def step(t, w, g):
        # torch.optim.AdamW: the decay is decoupled (not added to g, which is taken at w_t) and
        # comes first: w' = (1 - alpha lambda) w, then Adam's step from w'
        return adam(t, (1 - alpha[t] * weight_decay[t]).repeat_interleave(reps) * w, g)
    return step


_STEPS = {"momentum": _momentum, "adam": _adam, "rmsprop": _rmsprop, "adamw": _adamw}


def _clipped(step, tau, reps):
    """step with torch.nn.utils.clip_grad_norm_'s clip of g first, a threshold per group."""
    def clipped(t, w, g):
        finite = torch.isfinite(tau[t])
        # +inf (no clip) is kept off the tape's arithmetic, whose 0 * inf would be NaN
        ratio = torch.where(finite, tau[t], torch.zeros_like(tau[t])) / (torch.linalg.norm(g)
                                                                          + 1e-6)
        c = torch.where(finite & (ratio < 1), ratio, torch.ones_like(ratio))
        return step(t, w, c.repeat_interleave(reps) * g)
    return clipped


def unrolled_hypergrad(tm, alpha, gamma=None, w0=None, meta=None, objective=None, *,
                       optimizer="momentum", beta1=None, beta2=None, eps=None,
                       weight_decay=None, clip=None):
    """Train ``tm`` (a TorchModel) for T = len(alpha) steps in float64 on the tape and return
    the gradients of ``objective(w_T)`` (a torch function of the flat float64 vector) with
    respect to w0, meta and every (step, group) hyperparameter, as a namespace with .w0, .meta,
    one (T, n_groups) array per kind, .kinds, .f (the objective), .w (w_T) and .stats (the
    running statistics after the last step; the objective runs with them).

    ``optimizer="momentum"`` (alpha, gamma, weight_decay: 0 when not given):
        g'_t = g_t + weight_decay_t w_t   (coupled, as torch.optim.SGD(weight_decay=))
        v_{t+1} = gamma_t v_t - (1 - gamma_t) g'_t,   w_{t+1} = w_t + alpha_t v_{t+1}
    ``optimizer="rmsprop"`` (alpha, gamma, beta2, eps, weight_decay: 0 when not given;
    torch.optim.RMSprop with momentum gamma and smoothing constant beta2):
        g'_t = g_t + weight_decay_t w_t,  s_{t+1} = beta2_t s_t + (1 - beta2_t) g'_t^2
        b_{t+1} = gamma_t b_t + g'_t / (sqrt(s_{t+1}) + eps_t),  w_{t+1} = w_t - alpha_t b_{t+1}
    ``optimizer="adam"`` (alpha, beta1, beta2, eps; torch.optim.Adam with per-step betas):
        m_{t+1} = beta1_t m_t + (1 - beta1_t) g_t,  s_{t+1} = beta2_t s_t + (1 - beta2_t) g_t^2
        c1_t = 1 - prod_{k<=t} beta1_k,  c2_t = 1 - prod_{k<=t} beta2_k
        w_{t+1} = w_t - (alpha_t / c1_t) m_{t+1} / (sqrt(s_{t+1}) / sqrt(c2_t) + eps_t)
    ``optimizer="adamw"`` (Adam's kinds and weight_decay; torch.optim.AdamW): the decoupled
    decay first, then Adam's step from the decayed weights (g_t is the gradient at w_t):
        w'_t = (1 - alpha_t weight_decay_t) w_t,
        w_{t+1} = w'_t - (alpha_t / c1_t) m_{t+1} / (sqrt(s_{t+1}) / sqrt(c2_t) + eps_t)
    The rates are taken as revl applies them (revl.gamma_applied, revl.beta_applied) and the
    gradients are with respect to the applied values, as revl's are; AdamW's factor
    1 - alpha weight_decay is taken as requested (revl applies it within 2^-51 of that).
    ``clip`` (any optimiser; (T, n_groups), +inf = no clipping): gradient clipping by global
    norm before the step, as torch.nn.utils.clip_grad_norm_ and revl's clip:
        g <- c_k g in group k,  c_k = min(1, clip_{t,k} / (||g_t||_2 + 1e-6))
    with .clip, the gradient with respect to it, among the kinds."""
    if optimizer not in _KINDS:
        raise ValueError(f"optimizer must be one of {sorted(_KINDS)}, got {optimizer!r}")
    given = {"alpha": alpha, "gamma": gamma, "beta1": beta1, "beta2": beta2, "eps": eps,
             "weight_decay": weight_decay}
    applied = {"gamma": gamma_applied, "beta1": beta_applied, "beta2": beta_applied}
    kinds = _KINDS[optimizer]
    hyper = {}
    for k in kinds:
        if given[k] is None and (optimizer, k) in _OPTIONAL_ZERO:
            given[k] = 0.0
        if given[k] is None:
            raise ValueError(f"optimizer {optimizer!r} needs {k}")
        x = np.asarray(given[k], dtype=np.float64)
        x = applied.get(k, lambda y: y)(x)
        hyper[k] = torch.tensor(np.broadcast_to(x, np.shape(alpha)).copy(), requires_grad=True)
    w0t = torch.tensor(np.asarray(w0, dtype=np.float64), requires_grad=True)
    mt = torch.tensor(np.asarray(meta if meta is not None else [], dtype=np.float64)
                      .reshape(tm.n_meta), requires_grad=tm.n_meta > 0)
    reps = torch.tensor(np.diff(tm.offsets))
    step = _STEPS[optimizer](*hyper.values(), reps)
    if clip is not None:
        tau = torch.tensor(np.broadcast_to(np.asarray(clip, dtype=np.float64),
                                           np.shape(alpha)).copy(), requires_grad=True)
        step = _clipped(step, tau, reps)
        hyper["clip"] = tau
        kinds = kinds + ("clip",)
    w = w0t
    # the running statistics (batch norm): updated in place by each training call, outside the
    # tape (held, not differentiated), as torch updates them in an unrolled training loop
    stats = tm.initial_stats()
    for t in range(hyper["alpha"].shape[0]):
        loss = tm.loss_at(t, w, mt, stats)
        (g,) = torch.autograd.grad(loss, w, create_graph=True)
        w = step(t, w, g)
    with tm.holding_stats(stats):      # the objective's eval mode sees this run's statistics
        f = objective(w)
    inputs = [w0t] + list(hyper.values()) + ([mt] if tm.n_meta else [])
    parts = torch.autograd.grad(f, inputs, allow_unused=True)
    out = [np.zeros(tuple(x.shape)) if p is None else p.numpy() for p, x in zip(parts, inputs)]
    return types.SimpleNamespace(w0=out[0], **dict(zip(kinds, out[1:1 + len(kinds)])),
                                 meta=out[-1] if tm.n_meta else np.zeros(0), kinds=kinds,
                                 f=float(f), w=w.detach().numpy(), stats=stats)
