"""The Python examples of docs/tutorial.md and docs/torch.md print what the docs say they print.

Each test takes a snippet from the markdown as it stands, runs it, and compares what it gives
with the figures read from the same markdown (the snippet's `# ...` comments and the sentence
that describes its result), so a doc edited without a rerun, or code that changes a result the
docs quote, fails here (issue 24: "every figure and example in docs/ comes from a run of the
current code")."""
import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def python_blocks(doc):
    return re.findall(r"```python\n(.*?)```", doc, re.S)


def section(doc, heading):
    """The text of the section whose heading starts with `heading`, up to the next heading."""
    start = doc.index("\n## " + heading)
    end = doc.find("\n## ", start + 1)
    return doc[start:end if end >= 0 else len(doc)]


def number(pattern, text):
    m = re.search(pattern, text, re.S)
    assert m, f"the docs no longer say {pattern!r}"
    return [float(g) for g in m.groups()]


def test_tutorial_adam_schedule(tmp_path, monkeypatch):
    doc = (ROOT / "docs" / "tutorial.md").read_text()
    sec = section(doc, "6. Another optimiser, from Python: Adam")
    (code,) = python_blocks(sec)
    monkeypatch.chdir(tmp_path)            # the snippet saves adam_hyperparams.txt
    env = {}
    exec(compile(code, "docs/tutorial.md section 6", "exec"), env)

    # the snippet's comments
    assert repr(env["s"].kinds) in code                          # s.kinds  # ('alpha', ...)
    (f_doc,) = number(r"# f = (\d+(?:\.\d+)?)", code)
    assert round(env["f"], 4) == f_doc
    v0, v1 = number(r"# validation loss (\d+(?:\.\d+)?) -> (\d+(?:\.\d+)?)", code)
    reports = env["reports"]
    assert round(reports[0].valid_loss, 4) == v0 and round(reports[-1].valid_loss, 4) == v1
    rows, cols = number(r"# hg\.alpha, hg\.beta1, hg\.beta2, hg\.eps: \((\d+), (\d+)\)", code)
    for k in ("alpha", "beta1", "beta2", "eps"):
        assert getattr(env["hg"], k).shape == (rows, cols)
        assert getattr(env["p"], k).shape == (rows, cols)

    # the sentence after it
    (a0, a5, a9, low, s_from, s_to, a_last, b1_lo, b1_hi, b2_lo, b2_hi) = number(
        r"rise from (\d+(?:\.\d+)?) at the first step to (\d+(?:\.\d+)?) at step 5 and (\d+(?:\.\d+)?) at step 9,"
        r"\s+fall to about (\d+(?:\.\d+)?) over steps (\d+) to (\d+) and rise again over the last "
        r"steps, to\s+(\d+(?:\.\d+)?) at the\s+last one; beta1 moves between (\d+(?:\.\d+)?) and (\d+(?:\.\d+)?) "
        r"from step to step, and beta2 stays between (\d+(?:\.\d+)?)\s+and (\d+(?:\.\d+)?)", sec)
    p = env["p"]
    a, b1, b2 = p.alpha.ravel(), p.beta1.ravel(), p.beta2.ravel()
    assert (round(a[0], 3), round(a[5], 3), round(a[9], 3), round(a[-1], 3)) == (a0, a5, a9,
                                                                                  a_last)
    assert round(a.max(), 3) == a9                       # step 9 is the peak
    middle = a[int(s_from):int(s_to) + 1]
    assert np.all(np.abs(middle - low) <= 0.005), middle     # "about 0.035" there
    assert a[-1] > a[int(s_to)]                              # "rise again"
    assert (round(b1.min(), 2), round(b1.max(), 2)) == (b1_lo, b1_hi)
    assert (round(b2.min(), 4), round(b2.max(), 4)) == (b2_lo, b2_hi)


def test_torch_adam_example_shape():
    import torch
    import revl.torch  # noqa: F401  (the snippets use revl.torch)
    doc = (ROOT / "docs" / "torch.md").read_text()
    first, adam = python_blocks(section(doc, "Example"))[:2]
    # the doc's own data set is Fashion-MNIST-like (x: (n, 1, 28, 28)); random data of that
    # shape gives the same shapes, and 300 steps are cut to 12 to keep this quick
    steps = 300
    assert first.count(str(steps)) >= 2 and str(steps) in adam
    few = 12
    g = torch.Generator().manual_seed(0)
    env = {"x": torch.randn(100, 1, 28, 28, generator=g, dtype=torch.float64),
           "y": torch.randint(0, 10, (100,), generator=g),
           "x_valid": torch.randn(50, 1, 28, 28, generator=g, dtype=torch.float64),
           "y_valid": torch.randint(0, 10, (50,), generator=g)}
    exec(compile(first.replace(str(steps), str(few)), "docs/torch.md example", "exec"), env)
    exec(compile(adam.replace(str(steps), str(few)), "docs/torch.md Adam example", "exec"), env)
    rows, cols = number(r"hg\.alpha\.shape\s+# \((\d+), (\d+)\)", adam)
    assert rows == steps
    hg, tm = env["hg"], env["tm"]
    for k in ("alpha", "beta1", "beta2", "eps"):
        assert getattr(hg, k).shape == (few, cols)
    m = re.search(r"tm\.names:\s*#?\s*([^)]*)\)", adam)
    names = [n.strip(" #\n") for n in m.group(1).replace("#", " ").split(",")]
    assert [n for n in names if n] == tm.names
