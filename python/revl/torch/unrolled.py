"""PyTorch's own hypergradient of a revl run: the same momentum SGD unrolled on the autograd
tape and differentiated in reverse mode (memory grows with every step).  The reference the
bridge is tested against and benchmarked with; written from the method (docs/method.md, s. 1).
"""

import types

import numpy as np
import torch


def unrolled_hypergrad(tm, alpha, gamma, w0, meta, objective):
    """Train ``tm`` (a TorchModel) for T = len(alpha) steps of

        v_{t+1} = gamma_t v_t - (1 - gamma_t) g_t,   w_{t+1} = w_t + alpha_t v_{t+1}

    in float64 on the tape (alpha, gamma: (T, n_groups), per group as revl's schedule) and
    return gradients of ``objective(w_T)`` (a torch function of the flat float64 vector) with
    respect to w0, alpha, gamma and meta, as a namespace with .w0 .alpha .gamma .meta, plus
    .f (the objective) and .w (w_T).  Use gamma at revl's applied values (revl.gamma_applied)
    to compare with revl."""
    alpha = torch.tensor(np.asarray(alpha, dtype=np.float64), requires_grad=True)
    gamma = torch.tensor(np.asarray(gamma, dtype=np.float64), requires_grad=True)
    w0t = torch.tensor(np.asarray(w0, dtype=np.float64), requires_grad=True)
    mt = torch.tensor(np.asarray(meta, dtype=np.float64).reshape(tm.n_meta),
                      requires_grad=tm.n_meta > 0)
    reps = torch.tensor(np.diff(tm.offsets))
    w, v = w0t, torch.zeros_like(w0t)
    for t in range(alpha.shape[0]):
        loss = tm.loss_at(t, w, mt)
        (g,) = torch.autograd.grad(loss, w, create_graph=True)
        a = alpha[t].repeat_interleave(reps)
        c = gamma[t].repeat_interleave(reps)
        v = c * v - (1 - c) * g
        w = w + a * v
    f = objective(w)
    inputs = [w0t, alpha, gamma] + ([mt] if tm.n_meta else [])
    parts = torch.autograd.grad(f, inputs, allow_unused=True)
    out = [np.zeros(tuple(x.shape)) if p is None else p.numpy() for p, x in zip(parts, inputs)]
    return types.SimpleNamespace(w0=out[0], alpha=out[1], gamma=out[2],
                                 meta=out[3] if tm.n_meta else np.zeros(0),
                                 f=float(f), w=w.detach().numpy())
