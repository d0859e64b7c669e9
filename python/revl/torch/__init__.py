"""PyTorch bridge: a torch.nn.Module, a loss and training data as a revl.Model.

    import revl, revl.torch
    tm = revl.torch.TorchModel(net, torch.nn.functional.cross_entropy, (x, y), batch_size=50)
    t = revl.Trainer(tm.model(), revl.Schedule.for_model(tm.model(), 200))
    t.train(tm.read_params())
    f, dfdw = tm.evaluate(t.weights, x_valid, y_valid)
    hg = t.hypergrad(dfdw)                       # hg.alpha[:, g] is the tensor tm.names[g]

Imported only when asked for (``import revl.torch``): ``import revl`` never loads torch.
See docs/torch.md.
"""

from .bridge import TorchModel
from .unrolled import unrolled_hypergrad

__all__ = ["TorchModel", "unrolled_hypergrad"]
