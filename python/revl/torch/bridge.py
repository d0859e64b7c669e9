"""TorchModel: a torch.nn.Module, a loss and training data seen by revl as a training loss
L(w, meta, step) with its gradient and Hessian-vector products, each by autograd.

Why each piece is here:
- w is revl's float64 vector: the module's parameters flattened in named_parameters() order.
  The module is never mutated by the callbacks: torch's functional_call runs it on tensors cut
  from w (cast to the module's dtype, a deterministic rounding), so the same (step, w, meta)
  always gives the same bits.
- Batch-norm running statistics are state that training calls change: the bridge passes
  them to functional_call explicitly, keeps the update of each training step (the statistics
  of w_T are what evaluation in eval mode uses) and runs every other call on copies.
- The reverse pass calls the model again at every step and must see exactly what the forward
  pass saw: the minibatch of step t is a function of (seed, t), torch's random generator is
  seeded from (seed, t) around every call (dropout), the thread count is fixed and
  torch.use_deterministic_algorithms(True) is on.  What this cannot rule out (a module with its
  own generator, state kept between calls) is caught: the forward gradient of each step is
  fingerprinted, and a reverse call at the same (step, w, meta) that gives other bits raises
  revl.InexactError naming the step.
"""

import contextlib
import hashlib

import numpy as np
import torch
from torch.nn.utils import stateless

from .. import _errors
from .._errors import InexactError, InvalidError
from ..core import Model

_FLOATS = (torch.float32, torch.float64)
_EVAL_STEP = 2**62    # the generator key of evaluations (no training step has it)


def _invalid(msg, function="TorchModel"):
    return InvalidError(_errors.ERR_INVALID, msg, function)


def _digest(*arrays):
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def _tensor(x, name, function):
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as e:
        raise _invalid(f"{name} must be a tensor or an array: {e}", function) from None


def _parameters(module):
    """(trainable, frozen): the module's named_parameters() that require grad (they are w) and
    those that do not (constants)."""
    params = list(module.named_parameters())
    return [(n, p) for n, p in params if p.requires_grad], \
        [(n, p) for n, p in params if not p.requires_grad]


_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _running_stats(module):
    """Copies of the module's buffers (dict name -> tensor), which must all be the running
    statistics of normalisation layers (BatchNorm*, InstanceNorm* with
    track_running_stats=True): their update by a training-mode call is known (an EMA of batch
    statistics, held, not differentiated); any other buffer is state the bridge cannot replay."""
    out, other = {}, []
    for mname, m in module.named_modules():
        for bname, b in m.named_buffers(recurse=False):
            if b is None:
                continue
            name = f"{mname}.{bname}" if mname else bname
            if isinstance(m, torch.nn.modules.batchnorm._NormBase) and bname in _STATS:
                out[name] = b.detach().clone()
            else:
                other.append(name)
    if other:
        raise _invalid(f"the module has buffers {other} that are not batch-norm running "
                       f"statistics: the bridge replays every training step exactly and cannot "
                       f"know how forward calls change them; keep a constant as a plain tensor "
                       f"attribute, or compute the state from the step")
    return out


def _copy(stats):
    return {k: v.clone() for k, v in stats.items()}


def _group_offsets(names, sizes, prefixes):
    """Group boundaries: one group per tensor, or tensors merged by name prefix (each tensor
    goes to the first prefix it starts with; a group's tensors must be consecutive)."""
    ends = np.cumsum([0] + sizes)
    if prefixes is None:
        return [int(e) for e in ends], list(names)
    prefixes = [str(p) for p in prefixes]
    owner = []
    for n in names:
        hit = [p for p in prefixes if n == p or n.startswith(p)]
        if not hit:
            raise _invalid(f"parameter {n!r} matches none of the group prefixes {prefixes}")
        owner.append(hit[0])
    offsets, gnames = [0], []
    for i, p in enumerate(owner):
        if i + 1 == len(owner) or owner[i + 1] != p:
            if p in gnames:
                raise _invalid(f"the parameters of group {p!r} are not consecutive in "
                               f"named_parameters() order: {names}")
            gnames.append(p)
            offsets.append(int(ends[i + 1]))
    unused = [p for p in prefixes if p not in gnames]
    if unused:
        raise _invalid(f"the group prefixes {unused} match no parameter (names: {names})")
    return offsets, gnames


def _tied_aliases(module):
    """(alias, name) for every further name of a parameter registered under several names (tied
    weights, e.g. an embedding shared with the output layer). named_parameters() lists such a
    parameter once, under `name`; the functional call must bind every alias to the same slice of
    w too, or those names would keep the module's own tensor (issue 24 item 3)."""
    first, aliases = {}, []
    for prefix, mod in module.named_modules(remove_duplicate=False):
        for pname, p in mod._parameters.items():
            if p is None:
                continue
            name = f"{prefix}.{pname}" if prefix else pname
            if id(p) not in first:
                first[id(p)] = name
            elif first[id(p)] != name and (name, first[id(p)]) not in aliases:
                aliases.append((name, first[id(p)]))
    return aliases


class TorchModel:
    """A revl training loss from a torch module.

    ``module``: a torch.nn.Module whose parameters that require grad (all float32 or all
    float64) are w; those that do not are constants (copied now); its buffers, if any, must be
    batch-norm running statistics, updated by each training step (module.train() semantics)
    and used by evaluation (module.eval() semantics; ``running_stats``, ``save_state``).  ``loss(output, target)`` (or ``loss(output, target, meta)`` with
    ``loss_uses_meta=True``): the scalar training loss of a minibatch.  ``data = (x, y)``
    with ``batch_size``: step t trains on a batch chosen from (seed, t) (an epoch is a
    permutation); or ``batch(step) -> (x, y)``, which must be a function of step only.
    ``n_meta`` meta-parameters enter through ``penalty(params, meta)`` (params: a dict name ->
    tensor) and/or the loss.  ``groups``: None (one group per tensor, ``names``) or name
    prefixes to merge tensors.  ``threads``: torch's intra-op thread count, set now and kept.
    ``seed_rng``: seed torch's generator from (seed, step) around each call (dropout); with
    False a random module is caught as InexactError.
    """

    def __init__(self, module, loss, data=None, *, batch_size=None, batch=None, seed=0,
                 n_meta=0, penalty=None, loss_uses_meta=False, groups=None, threads=1,
                 seed_rng=True):
        if not isinstance(module, torch.nn.Module):
            raise _invalid(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if not callable(loss):
            raise _invalid("loss must be a callable loss(output, target) -> scalar tensor")
        if penalty is not None and not callable(penalty):
            raise _invalid("penalty must be None or a callable penalty(params, meta)")
        params, frozen = _parameters(module)
        if not params:
            raise _invalid("the module has no parameters that require grad")
        dtypes = {p.dtype for _, p in params}
        if len(dtypes) != 1 or not dtypes <= set(_FLOATS):
            raise _invalid(f"the parameters must be all float32 or all float64, got "
                           f"{sorted(str(d) for d in dtypes)}")
        self.module, self.loss_fn, self.penalty = module, loss, penalty
        self.loss_uses_meta = bool(loss_uses_meta)
        self.dtype = dtypes.pop()
        # frozen parameters: constants, copied now (the module's own tensors may change later)
        self.frozen_names = [n for n, _ in frozen]
        self._const = {n: p.detach().clone() for n, p in frozen}
        # running statistics: _stats[t] holds them before step t (t = 0..last training step
        # + 1), _stats_at[t] the digest of the (w, meta) of step t that updated them
        self._stats = [_running_stats(module)]
        self._stats_at = []
        self.stats_names = list(self._stats[0])
        # the modes of training calls: the module's at construction (train() unless the user
        # set a submodule to eval, e.g. a frozen batch norm); evaluation runs all in eval mode
        self._modules = list(module.modules())
        self._train_modes = [m.training for m in self._modules]
        self.names = [n for n, _ in params]
        self.aliases = _tied_aliases(module)   # tied parameters' other names
        self.shapes = [tuple(p.shape) for _, p in params]
        self.sizes = [int(p.numel()) for _, p in params]
        self.n_params = int(sum(self.sizes))
        if isinstance(n_meta, bool) or not isinstance(n_meta, (int, np.integer)) or n_meta < 0:
            raise _invalid(f"n_meta must be an integer >= 0, got {n_meta!r}")
        self.n_meta = int(n_meta)
        if self.loss_uses_meta and self.n_meta == 0:
            raise _invalid("loss_uses_meta=True needs n_meta > 0")
        self.offsets, self.group_names = _group_offsets(self.names, self.sizes, groups)
        self.seed, self.seed_rng = int(seed), bool(seed_rng)
        self._set_data(data, batch_size, batch)
        self.threads = int(threads)
        if self.threads < 1:
            raise _invalid(f"threads must be >= 1, got {threads!r}")
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(True)
        self._perm_epoch, self._perm = None, None
        self._seen = {}          # (step, digest of w and meta) -> digest of the gradient
        self._model = None
        self._trial()

    # ---- data
    def _set_data(self, data, batch_size, batch):
        if (data is None) == (batch is None):
            raise _invalid("give either data=(x, y) with batch_size, or batch(step) -> (x, y)")
        if batch is not None:
            if not callable(batch):
                raise _invalid("batch must be a callable batch(step) -> (x, y)")
            self._user_batch, self.x, self.y = batch, None, None
            return
        try:
            x, y = data
        except (TypeError, ValueError):
            raise _invalid("data must be a pair (x, y)") from None
        x, y = _tensor(x, "x", "TorchModel"), _tensor(y, "y", "TorchModel")
        if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise _invalid(f"x and y must hold the same number (> 0) of examples along their "
                           f"first axis, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
        if x.is_floating_point():
            x = x.to(self.dtype)
        if y.is_floating_point():
            y = y.to(self.dtype)
        n = int(x.shape[0])
        if batch_size is None:
            batch_size = n
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or not 1 <= batch_size <= n:
            raise _invalid(f"batch_size must be an integer in 1..{n} (the number of examples), "
                           f"got {batch_size!r}")
        self._user_batch, self.x, self.y = None, x.contiguous(), y.contiguous()
        self.batch_size = int(batch_size)
        self.n_batches = n // self.batch_size

    def batch(self, step):
        """(x, y) of step ``step``: the same tensors whenever asked."""
        if self._user_batch is not None:
            return self._user_batch(step)
        if self.batch_size == self.x.shape[0]:
            return self.x, self.y
        epoch, k = divmod(int(step), self.n_batches)
        if self._perm_epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = torch.from_numpy(rng.permutation(self.x.shape[0]))
            self._perm_epoch = epoch
        idx = self._perm[k * self.batch_size:(k + 1) * self.batch_size]
        return self.x[idx], self.y[idx]

    # ---- the loss as a torch function of the flat vector
    def params_of(self, flat):
        """The module's parameters cut from the flat float64 tensor ``flat`` (dict name ->
        tensor in the module's dtype; differentiable with respect to flat)."""
        parts = torch.split(flat.to(self.dtype), self.sizes)
        out = {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}
        for alias, name in self.aliases:
            out[alias] = out[name]
        return out

    def _set_modes(self, modes):
        for m, training in zip(self._modules, modes):
            m.training = training

    @contextlib.contextmanager
    def _mode(self, train):
        """The module in its training modes (train=True) or all in eval mode, put back after."""
        saved = [m.training for m in self._modules]
        want = self._train_modes if train else [False] * len(saved)
        if saved == want:              # the usual case in training: nothing to set
            yield
            return
        self._set_modes(want)
        try:
            yield
        finally:
            self._set_modes(saved)

    def _call(self, params, stats, x):
        return stateless.functional_call(self.module, {**params, **self._const, **stats}, (x,))

    def _step_seed(self, step):
        return int(np.random.SeedSequence([self.seed, int(step), 0x7e57]).generate_state(1)[0])

    def loss_at(self, step, flat, meta, stats=None):
        """The training loss of step ``step`` at the flat float64 tensor ``flat`` with the meta
        tensor ``meta`` (a differentiable torch scalar: the function the callbacks and
        revl.torch.unrolled_hypergrad use), the module in its training modes.  ``stats``: the
        running statistics (dict name -> tensor) the call reads and, in training mode, updates
        in place; None: a copy of those before step ``step`` (the last known if later)."""
        if stats is None:
            stats = _copy(self._stats[min(int(step), len(self._stats) - 1)])
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)      # someone changed it: the bits would change
        x, y = self.batch(step)
        params = self.params_of(flat)
        m = meta.to(self.dtype)
        with torch.random.fork_rng(devices=[], enabled=self.seed_rng), self._mode(True):
            if self.seed_rng:
                torch.manual_seed(self._step_seed(step))
            out = self._call(params, stats, x)
            loss = self.loss_fn(out, y, m) if self.loss_uses_meta else self.loss_fn(out, y)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise _invalid(f"the loss must return a scalar tensor, got "
                               f"{type(loss).__name__} of shape {getattr(loss, 'shape', None)}",
                               "TorchModel.loss")
            if self.penalty is not None:
                loss = loss + self.penalty(params, m)
        return loss.reshape(()).to(torch.float64)

    def outputs(self, flat, x):
        """The module's output at ``flat`` (a flat float64 tensor) on the input x, in eval mode
        as module.eval() would run it: dropout off, batch norm with the running statistics of
        the last training step (``running_stats()``)."""
        if x.is_floating_point():
            x = x.to(self.dtype)
        params = self.params_of(flat)
        with torch.random.fork_rng(devices=[], enabled=self.seed_rng), self._mode(False):
            if self.seed_rng:
                torch.manual_seed(self._step_seed(_EVAL_STEP))
            return self._call(params, _copy(self._stats[-1]), x)

    def loss_on(self, flat, x, y):
        """The loss (no penalty; a loss that uses meta gets None) of the module at ``flat`` on
        data (x, y) in eval mode (``outputs``), e.g. a validation objective; differentiable with
        respect to flat (the running statistics are held constant, as unrolled PyTorch holds
        them)."""
        out = self.outputs(flat, x)
        loss = self.loss_fn(out, y, None) if self.loss_uses_meta else self.loss_fn(out, y)
        return loss.reshape(()).to(torch.float64)

    def _trial(self):
        """Run step 0 once now, so a wrong data shape or loss fails at construction with the
        reason instead of in the middle of training."""
        x = y = None
        try:
            x, y = self.batch(0)
            flat = torch.tensor(self.read_params())
            self.loss_at(0, flat, torch.zeros(self.n_meta, dtype=torch.float64))
        except InvalidError:
            raise
        except Exception as e:
            raise _invalid(f"the module and loss failed on the batch of step 0 (x of shape "
                           f"{tuple(getattr(x, 'shape', ()))}, y of shape "
                           f"{tuple(getattr(y, 'shape', ()))}): {type(e).__name__}: {e}") \
                from e

    # ---- numpy in, numpy out: what revl calls
    def _inputs(self, w, meta, meta_grad):
        flat = torch.tensor(np.asarray(w, dtype=np.float64)).requires_grad_(True)
        m = torch.tensor(np.asarray(meta, dtype=np.float64).reshape(self.n_meta))
        if meta_grad and self.n_meta:
            m.requires_grad_(True)
        return flat, m

    def grad(self, step, w, meta=()):
        """(loss, gradient) of step ``step`` at w (the forward pass's callback).  Running
        statistics: a call at the step after the last one kept is a training step and its
        update is kept for the next step; a call at an earlier step at the weights that step
        had (the reverse pass, a resumed run) changes nothing; one at other weights starts a
        new trajectory there (a new training run): the later steps' statistics are dropped."""
        step = int(step)
        key = _digest(w, meta)
        if step == 0:
            self._seen.clear()        # a new training run starts
        last = len(self._stats) - 1
        if self.stats_names:
            if step > last:
                raise _invalid(f"the running statistics before step {step} are not known (the "
                               f"bridge has them up to step {last}): after loading a trainer "
                               f"checkpoint in a new process, load the bridge's state saved "
                               f"with it (TorchModel.load_state)", "TorchModel.grad")
            if step < last and self._stats_at[step] != key:
                del self._stats[step + 1:], self._stats_at[step:]
                last = step
        stats = _copy(self._stats[min(step, last)])
        flat, m = self._inputs(w, meta, False)
        loss = self.loss_at(step, flat, m, stats)
        (g,) = torch.autograd.grad(loss, flat)
        g = g.numpy()
        if step == last and self.stats_names:
            self._stats.append(stats)
            self._stats_at.append(key)
        self._seen[(step, key)] = _digest(g)
        return float(loss), g

    def _fused(self, step, w, meta, direction):
        """(H v, d/dmeta (g . v), g) at step ``step`` with v = direction(g): one forward pass and
        one double backward (g held constant in v)."""
        flat, m = self._inputs(w, meta, True)
        loss = self.loss_at(step, flat, m)
        (g,) = torch.autograd.grad(loss, flat, create_graph=True)
        gd = g.detach().numpy()
        self._check_same(step, w, meta, gd)
        v = np.array(direction(gd), dtype=np.float64)  # a copy: torch keeps it
        dot = torch.dot(g, torch.from_numpy(v))
        inputs = [flat] + ([m] if self.n_meta else [])
        if dot.requires_grad:
            parts = torch.autograd.grad(dot, inputs, allow_unused=True)
        else:                          # the gradient does not depend on w or meta: H = 0
            parts = [None] * len(inputs)
        hv = np.zeros(self.n_params) if parts[0] is None else parts[0].numpy()
        hm = np.zeros(self.n_meta)
        if self.n_meta and parts[1] is not None:
            hm = parts[1].numpy()
        return hv, hm, gd

    def hvp_affine(self, step, w, meta, a, b):
        """(hv_w, hv_meta, g), revl's hvp_affine callback: the gradient g at step ``step``,
        then the Hessian-vector products along v = a + b * g (g held constant): hv_w =
        d2L/dw2 v and hv_meta = d/dmeta (grad_w L . v); one forward and one double backward,
        so an Adam reverse step is one torch pass."""
        def affine(gd):                # numpy's a + b * g: the library's v, bit for bit
            v = np.asarray(a, dtype=np.float64)
            return v if b is None else v + np.asarray(b, dtype=np.float64) * gd

        hv, hm, gd = self._fused(step, w, meta, affine)
        return hv, hm, gd.copy()

    def hvp_dir(self, step, w, meta, direction):
        """(hv_w, hv_meta), revl's hvp_dir callback: the gradient g at step ``step``, handed to
        the library's direction(g) for v (RMSprop's, or a clipped step's), then the
        Hessian-vector products along v from the same forward pass: an RMSprop reverse step is
        one torch pass instead of a gradient call and then an hvp call."""
        hv, hm, _ = self._fused(step, w, meta, direction)
        return hv, hm

    def hvp(self, step, w, meta, v):
        """(hv_w, hv_meta, g) at step ``step``: revl's hvp callback with hvp_gives_grad."""
        return self.hvp_affine(step, w, meta, v, None)

    def _check_same(self, step, w, meta, g):
        seen = self._seen.get((int(step), _digest(w, meta)))
        if seen is not None and seen != _digest(g):
            raise InexactError(
                _errors.ERR_INEXACT,
                f"the torch model's gradient at step {int(step)} differs from the forward "
                f"pass's at the same weights: the module is not deterministic (random numbers "
                f"from its own generator, state kept between calls, or a changed thread count)",
                "TorchModel")

    # ---- revl side
    def model(self):
        """The revl.Model (made once): grad, the hvp that also gives the gradient (momentum's
        reverse step: one torch pass), hvp_affine (Adam's: one torch pass) and hvp_dir
        (RMSprop's and clipped steps': one torch pass), one group per tensor (or per prefix)."""
        if self._model is None:
            self._model = Model(self.n_params, self.n_meta, self.grad, self.hvp,
                                hvp_gives_grad=True, groups=self.offsets,
                                hvp_affine=self.hvp_affine, hvp_dir=self.hvp_dir)
        return self._model

    def _trainable(self):
        return [p for _, p in _parameters(self.module)[0]]

    def read_params(self):
        """The module's trainable parameters as one float64 vector (w0)."""
        return np.concatenate([p.detach().to(torch.float64).reshape(-1).numpy()
                               for p in self._trainable()])

    # ---- running statistics: the state forward steps update
    def running_stats(self):
        """Copies of the running statistics after the last training step (dict name ->
        tensor; empty without batch norm): what evaluation uses."""
        return _copy(self._stats[-1])

    def initial_stats(self):
        """Copies of the running statistics before step 0 (the module's at construction)."""
        return _copy(self._stats[0])

    @contextlib.contextmanager
    def holding_stats(self, stats):
        """Evaluate (outputs, loss_on, evaluate) with the running statistics ``stats`` instead
        of the last training step's."""
        saved = self._stats
        self._stats = saved[:-1] + [stats]
        try:
            yield
        finally:
            self._stats = saved

    def write_buffers(self):
        """Copy the running statistics after the last training step into the module's
        buffers (with write_params, the module is then the trained network)."""
        bufs = dict(self.module.named_buffers())
        with torch.no_grad():
            for n, v in self._stats[-1].items():
                bufs[n].copy_(v)

    def save_state(self, path):
        """Write the running statistics of every step trained so far (torch.save): with a
        trainer checkpoint (Trainer.save, set_checkpoint), what a resumed run needs."""
        torch.save({"revl.torch state": 1, "names": self.stats_names, "stats": self._stats,
                    "at": self._stats_at}, path)

    def load_state(self, path, step=None):
        """Read what save_state wrote (for a module with the same running statistics).
        ``step``: the step a loaded trainer checkpoint resumes from (Trainer.stats
        ["steps_done"]): the statistics of later steps are dropped and recomputed by the
        resumed steps."""
        d = torch.load(path)
        if not isinstance(d, dict) or d.get("revl.torch state") != 1 \
                or d.get("names") != self.stats_names:
            raise _invalid(f"{path} is not a state saved by TorchModel.save_state for a module "
                           f"with the running statistics {self.stats_names}",
                           "TorchModel.load_state")
        stats, at = d["stats"], d["at"]
        if step is not None:
            if not 0 <= int(step) < len(stats):
                raise _invalid(f"{path} holds the running statistics of steps 0..{len(stats) - 1}, "
                               f"not of step {step}", "TorchModel.load_state")
            stats = stats[:int(step) + 1]
            at = at[:int(step)]
        self._stats, self._stats_at = stats, at

    def write_params(self, w):
        """Copy the float64 vector w into the module's parameters (cast to their dtype)."""
        w = np.asarray(w)
        if w.shape != (self.n_params,) or w.dtype.kind not in "biuf":
            raise _invalid(f"w must be {self.n_params} real numbers (shape ({self.n_params},)), "
                           f"got shape {w.shape} dtype {w.dtype}", "TorchModel.write_params")
        with torch.no_grad():
            for p, o, n in zip(self._trainable(), self.offsets_of_tensors(), self.sizes):
                p.copy_(torch.as_tensor(w[o:o + n].astype(np.float64)).view(p.shape))

    def offsets_of_tensors(self):
        """Start of each tensor in w, in named_parameters() order."""
        return [int(o) for o in np.cumsum([0] + self.sizes[:-1])]

    def unpack(self, w):
        """dict name -> numpy view of w shaped like the tensor."""
        w = np.asarray(w)
        return {n: w[o:o + k].reshape(s) for n, o, k, s in
                zip(self.names, self.offsets_of_tensors(), self.sizes, self.shapes)}

    def evaluate(self, w, x, y):
        """(loss, gradient) without penalty on data (x, y) at w: a validation objective f(w)
        and the df/dw that Trainer.hypergrad takes."""
        x, y = _tensor(x, "x", "TorchModel.evaluate"), _tensor(y, "y", "TorchModel.evaluate")
        flat = torch.tensor(np.asarray(w, dtype=np.float64)).requires_grad_(True)
        loss = self.loss_on(flat, x, y)
        (g,) = torch.autograd.grad(loss, flat)
        return float(loss), g.numpy()
