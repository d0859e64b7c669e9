"""A small tanh network in numpy with a hand-written gradient and Hessian-vector product
(Pearlmutter's R-operator), used by the tests as a callback model.

    f(x) = tanh(x W1 + b1) . w2 + b2
    L(w, lam, step) = mean over the minibatch of step of (f(x) - y)^2 / 2 + exp(lam)/2 |w|^2

w = [W1 (D x H) row-major, b1 (H), w2 (H), b2 (1)]; one meta-parameter lam (log L2).
"""
import numpy as np


class TanhNet:
    def __init__(self, d=3, h=4, n=40, batch=8, seed=0, n_meta=1):
        rng = np.random.default_rng(seed)
        self.d, self.h, self.batch, self.n_meta = d, h, batch, n_meta
        self.x = rng.normal(size=(n, d))
        self.y = np.sin(self.x @ rng.normal(size=d)) + 0.1 * rng.normal(size=n)
        self.xv = rng.normal(size=(n, d))
        self.yv = np.sin(self.xv @ rng.normal(size=d))
        self.n_params = d * h + h + h + 1
        self.groups = [0, d * h, d * h + h, d * h + 2 * h, self.n_params]
        self.calls = {"grad": 0, "hvp": 0}

    def unpack(self, w):
        d, h = self.d, self.h
        W1 = w[:d * h].reshape(d, h)
        b1 = w[d * h:d * h + h]
        w2 = w[d * h + h:d * h + 2 * h]
        b2 = w[-1]
        return W1, b1, w2, b2

    def batch_of(self, step):
        n = self.x.shape[0]
        idx = (step * self.batch + np.arange(self.batch)) % n
        return self.x[idx], self.y[idx]

    def _lam(self, meta):
        return float(np.exp(meta[0])) if self.n_meta else 0.0

    def loss_grad_on(self, w, x, y, lam=0.0):
        W1, b1, w2, b2 = self.unpack(w)
        a = np.tanh(x @ W1 + b1)
        r = (a @ w2 + b2 - y) / len(y)
        loss = 0.5 * len(y) * float(r @ r) + 0.5 * lam * float(w @ w)
        da = np.outer(r, w2)
        dz = da * (1 - a * a)
        g = np.concatenate([(x.T @ dz).ravel(), dz.sum(0), a.T @ r, [r.sum()]]) + lam * w
        return loss, g

    def grad(self, step, w, meta):
        self.calls["grad"] += 1
        x, y = self.batch_of(step)
        return self.loss_grad_on(w, x, y, self._lam(meta))

    def hvp(self, step, w, meta, v):
        self.calls["hvp"] += 1
        x, y = self.batch_of(step)
        lam = self._lam(meta)
        W1, b1, w2, b2 = self.unpack(w)
        VW1, vb1, vw2, vb2 = self.unpack(v)
        a = np.tanh(x @ W1 + b1)
        s = 1 - a * a
        r = (a @ w2 + b2 - y) / len(y)
        Ra = s * (x @ VW1 + vb1)
        Rr = (Ra @ w2 + a @ vw2 + vb2) / len(y)
        da = np.outer(r, w2)
        Rda = np.outer(Rr, w2) + np.outer(r, vw2)
        Rdz = Rda * s - 2 * da * a * Ra
        hv = np.concatenate([(x.T @ Rdz).ravel(), Rdz.sum(0), Ra.T @ r + a.T @ Rr,
                             [Rr.sum()]]) + lam * v
        hv_meta = np.array([lam * float(w @ v)]) if self.n_meta else None
        return hv, hv_meta

    def valid(self, w):
        """Validation objective f(w) (no penalty) and its gradient."""
        return self.loss_grad_on(w, self.xv, self.yv)

    def init(self, seed=1, scale=0.5):
        return scale * np.random.default_rng(seed).normal(size=self.n_params)

    def hvp_affine(self, step, w, meta, a, b):
        """The fused callback: the gradient g at w, then the Hessian products along
        v = a + b * g, as (hv_w, hv_meta, g)."""
        self.calls["hvp_affine"] = self.calls.get("hvp_affine", 0) + 1
        x, y = self.batch_of(step)
        g = self.loss_grad_on(w, x, y, self._lam(meta))[1]
        hv, hm = self.hvp(step, w, meta, a + b * g)
        self.calls["hvp"] -= 1
        return hv, hm, g


    def hvp_dir(self, step, w, meta, direction):
        """The fused callback of RMSprop (and clipped steps): the gradient g at w, the library's
        direction v = direction(g), then the Hessian products along v, as (hv_w, hv_meta)."""
        self.calls["hvp_dir"] = self.calls.get("hvp_dir", 0) + 1
        x, y = self.batch_of(step)
        g = self.loss_grad_on(w, x, y, self._lam(meta))[1]
        hv, hm = self.hvp(step, w, meta, direction(g))
        self.calls["hvp"] -= 1
        return hv, hm


class SpreadModel:
    """Gradients spanning seven decades: L(w) = sum_i c_i log cosh(w_i - t_i) with
    c_i = 10^-5 ... 10^2, so an optimiser that divides out the gradient's scale (Adam) shows
    any lost relative precision of its small states in w."""

    def __init__(self, n=16, seed=0):
        rng = np.random.default_rng(seed)
        self.n_params = n
        self.c = np.logspace(-5, 2, n)
        self.t = rng.normal(size=n)
        self.groups = [0, n // 2, n]

    def grad(self, step, w, meta):
        z = w - self.t + 0.01 * np.sin(step)       # a step-dependent target: gradients vary
        return float(self.c @ np.log(np.cosh(z))), self.c * np.tanh(z)

    def hvp(self, step, w, meta, v):
        z = w - self.t + 0.01 * np.sin(step)
        return self.c * (1 - np.tanh(z) ** 2) * v, None
