"""The library's folders are layers that only look down (README, "What is in the box"): a file in
src/<layer>/ includes headers of its own layer or of layers listed before it, never after, and no
chain of includes comes back to the header it started from. A new folder must be given its place
here, so the order is decided once instead of drifting."""
import pathlib
import re

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"

# lowest first: each may include only itself and what comes before it
LAYERS = ["base", "exact", "optim", "core", "data", "models", "parallel", "hyperopt"]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([A-Za-z0-9_.]+)"', re.M)


def includes(path):
    return INCLUDE.findall(path.read_text())


def test_every_folder_has_a_place():
    folders = sorted(p.name for p in SRC.iterdir() if p.is_dir())
    assert folders == sorted(LAYERS), \
        f"src/ folders {folders} differ from the layer order {LAYERS}: place the new one"


def test_layers_only_look_down():
    wrong = []
    for path in sorted(SRC.glob("*/*.[ch]")):
        here = LAYERS.index(path.parent.name)
        for layer, header in includes(path):
            assert layer in LAYERS, f"{path.relative_to(SRC)} includes {layer}/{header}, no layer"
            if LAYERS.index(layer) > here:
                wrong.append(f"{path.relative_to(SRC)} includes {layer}/{header}")
    assert not wrong, "a lower layer reaches up: " + "; ".join(wrong)


def test_no_header_cycle():
    graph = {str(p.relative_to(SRC)): [f"{l}/{h}" for l, h in includes(p)]
             for p in SRC.glob("*/*.h")}
    state = {}  # 1 = on the current path, 2 = done

    def visit(node, path):
        if state.get(node) == 1:
            raise AssertionError("include cycle: " + " -> ".join(path + [node]))
        if state.get(node) == 2 or node not in graph:
            return
        state[node] = 1
        for nxt in graph[node]:
            visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        visit(node, [])
