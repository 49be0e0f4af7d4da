"""The library's modules import only downward: config -> math -> networks -> training and
sampling -> methods -> evaluation -> tools -> CLI. Every module (lazy imports inside functions
included) is placed in one layer below; a module may import its own layer or lower ones, and the
import graph has no cycle."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "strdiff_edu"

LAYERS = (
    ("config", {"errors", "locations", "device", "checkpoint", "models.config"}),
    # profiles build their SDE and data renders images with masks, so they sit with the math
    ("math", {"sde", "profiles", "symbolic", "equations", "fill", "images", "masks", "structure", "metrics",
              "data", "viz", "diagrams"}),
    ("networks", {"models.layers", "models.spade", "models.discriminator", "models.unet", "models",
                  "models.summary", "official", "weights", "fast"}),
    ("training and sampling", {"losses", "train", "sampling", "resampling", "baselines"}),
    ("methods", {"methods"}),
    ("evaluation", {"evaluate", "demo"}),
    ("tools", {"tools", "tools.bench", "tools.datasets", "tools.prepare"}),
    ("CLI", {"cli", ""}),      # "" is the package's __init__ (re-exports)
)
LAYER = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}


def _module_name(path: Path, root: Path = PKG) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = PKG) -> set:
    """The strdiff_edu modules ``path`` imports (relative or absolute, at any depth)."""
    mod = _module_name(path, root)
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    pkg = [p for p in pkg if p]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[:len(pkg) - (node.level - 1)]
            if node.module:
                out.add(".".join(base + node.module.split(".")))
            else:
                out.update(".".join(base + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("strdiff_edu"):
            out.add(node.module[len("strdiff_edu."):] if "." in node.module else "")
        elif isinstance(node, ast.Import):
            out.update(a.name[len("strdiff_edu."):] for a in node.names if a.name.startswith("strdiff_edu."))
    known = set(LAYER)
    return {m if m in known else m.rsplit(".", 1)[0] for m in out} - {mod}   # `from .models import X`


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py")) if "_weights" not in p.parts}


def test_every_module_has_a_layer():
    assert set(MODULES) - set(LAYER) == set(), "place the new module in a layer of tests/test_layers.py"
    assert set(LAYER) - set(MODULES) == set(), "a layer names a module that no longer exists"


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_run_downward(mod):
    up = sorted(d for d in _imports(MODULES[mod]) if LAYER.get(d, -1) > LAYER[mod])
    assert not up, (f"{mod} ({LAYERS[LAYER[mod]][0]}) imports {', '.join(up)} from a higher layer "
                    f"({', '.join(LAYERS[LAYER[d]][0] for d in up)})")


def test_the_import_graph_has_no_cycle():
    graph = {m: _imports(p) & set(MODULES) for m, p in MODULES.items()}
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for d in graph[m]:
            if state.get(d) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack + [m, d]))
            if d not in state:
                visit(d, stack + [m])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [])


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself can fail: a math module that imports the sampler lazily is caught."""
    probe = tmp_path / "strdiff_edu" / "sde.py"
    probe.parent.mkdir()
    probe.write_text((PKG / "sde.py").read_text(encoding="utf-8")
                     + "\n\ndef _probe():\n    from .sampling import StrDiffusionSampler\n", encoding="utf-8")
    found = _imports(probe, tmp_path / "strdiff_edu")
    assert "sampling" in found and LAYER["sampling"] > LAYER["sde"]
