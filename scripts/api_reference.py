#!/usr/bin/env python
"""Write the book's API reference (book/reference/api.md) from strdiff_edu's docstrings.

Usage: python scripts/api_reference.py [--out PATH] [--check]

  --out PATH  where to write (default: book/reference/api.md)
  --check     write nothing; exit 1 if PATH differs from what would be written

Standard library only (``importlib`` + ``inspect``); no network, no Sphinx. One section per
public module of ``strdiff_edu`` (every module whose name has no leading underscore), listing the
classes and functions *defined* in that module (not re-exported ones), in source order, with
their signatures and docstrings. The output is deterministic: no memory addresses, no paths,
no dates.

The docstrings are written in a reST-ish dialect that mostly is valid MyST already:

* ````code```` is a CommonMark code span (kept as is);
* ``{ref}`label``` is a MyST role (kept as is; tests/test_book.py checks that the labels exist);
* Sphinx roles (``:class:``, ``:func:``, ``:meth:``, ``:mod:``, ``:data:``) are not MyST: they
  become links to the object's entry on this page when it has one, else inline code;
* a paragraph ending in ``::`` (reST's "literal block follows") ends in ``:`` instead;
* ``$`` outside code is escaped (MyST would read it as inline math).

The book build (scripts/build_book.sh) runs this script before mystmd, and the generated page is
not committed (it is in .gitignore), so it can never be stale.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "book" / "reference" / "api.md"
PACKAGE = "strdiff_edu"

HEADER = """\
# API reference

This page is generated from the docstrings of `strdiff_edu` by `scripts/api_reference.py` each
time the book is built; do not edit it by hand. It lists, for every public module, the classes
and functions defined there, with their signatures. For what the modules are *for*, read the
chapters; for which function implements which of the paper's equations, see the
[equation map](equation_map.md).
"""

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_SPHINX_ROLE = re.compile(r":(class|func|meth|mod|data|attr|obj|exc):`(~?)([^`]+)`")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def public_modules() -> List[str]:
    """Every importable module of the package whose dotted name has no part starting with '_'."""
    pkg = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=PACKAGE + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def anchor(qualname: str) -> str:
    """MyST label of an object's entry: lower case, dots and underscores become hyphens."""
    return "api-" + re.sub(r"[^a-z0-9]+", "-", qualname.lower()).strip("-")


def _line(obj) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 10 ** 9


def _members(module) -> Tuple[list, list]:
    """(classes, functions) defined in ``module``, public, in source order."""
    classes, functions = [], []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            classes.append((name, obj))
        elif inspect.isfunction(obj):
            functions.append((name, obj))
    key = lambda item: (_line(item[1]), item[0])
    return sorted(classes, key=key), sorted(functions, key=key)


def _class_members(cls) -> list:
    """Public methods, class/static methods and properties defined in the class body itself."""
    out = []
    for name, raw in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(raw, property):
            out.append((name, raw, "property"))
        elif isinstance(raw, (staticmethod, classmethod)):
            out.append((name, raw.__func__, type(raw).__name__))
        elif inspect.isfunction(raw):
            out.append((name, raw, "method"))
    target = lambda raw: raw.fget if isinstance(raw, property) else raw
    return sorted(out, key=lambda item: (_line(target(item[1])), item[0]))


def _signature(obj, drop_self: bool = False) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    if drop_self:
        params = list(sig.parameters.values())
        if params and params[0].name in ("self", "cls"):
            sig = sig.replace(parameters=params[1:])
    # No memory addresses or local paths in default values: the page must not depend on the machine.
    return _ADDRESS.sub("", str(sig)).replace(str(ROOT), "<repo>")


def collect_targets(modules: List[str]) -> Dict[str, str]:
    """Fully qualified name -> anchor, for every object that gets an entry on the page."""
    targets = {}
    for modname in modules:
        module = importlib.import_module(modname)
        targets[modname] = anchor(modname)
        classes, functions = _members(module)
        for name, cls in classes:
            targets[f"{modname}.{name}"] = anchor(f"{modname}.{name}")
            for mname, _, _ in _class_members(cls):
                targets[f"{modname}.{name}.{mname}"] = anchor(f"{modname}.{name}.{mname}")
        for name, _ in functions:
            targets[f"{modname}.{name}"] = anchor(f"{modname}.{name}")
    return targets


def _resolve(target: str, context: str, targets: Dict[str, str]):
    """Find the anchor of a Sphinx-role target written relative to ``context`` (a module)."""
    target = target.strip()
    if target.startswith("."):
        base = context.rsplit(".", 1)[0] if not context.endswith("__init__") else context
        candidates = [base + target, context + target]
    else:
        candidates = [target, f"{context}.{target}", f"{PACKAGE}.{target}"]
    for cand in candidates:
        if cand in targets:
            return targets[cand]
    matches = sorted(full for full in targets if full.endswith("." + target.lstrip(".")))
    return targets[matches[0]] if len(matches) == 1 else None


def to_myst(doc: str, context: str, targets: Dict[str, str]) -> str:
    """Turn one docstring into MyST markdown (see the module docstring)."""
    def sphinx_role(match: re.Match) -> str:
        _, tilde, target = match.groups()
        shown = target.lstrip(".").rsplit(".", 1)[-1] if tilde else target.lstrip(".")
        label = _resolve(target, context, targets)
        return f"[`{shown}`](#{label})" if label else f"`{shown}`"

    doc = _SPHINX_ROLE.sub(sphinx_role, doc)
    # Escape $ outside code spans (the role rewrite above produced code spans, left alone here).
    pieces, pos = [], 0
    for match in _CODE_SPAN.finditer(doc):
        pieces.append(doc[pos:match.start()].replace("$", r"\$"))
        pieces.append(match.group(0))
        pos = match.end()
    pieces.append(doc[pos:].replace("$", r"\$"))
    doc = "".join(pieces)
    doc = re.sub(r"(?<=\S)::[ \t]*$", ":", doc, flags=re.M)
    doc = re.sub(r"^[ \t]*::[ \t]*$", "", doc, flags=re.M)
    return doc.strip()


def _entry(level: int, title: str, qualname: str, signature: str, doc: str) -> List[str]:
    out = [f"({anchor(qualname)})=", f"{'#' * level} `{title}`", ""]
    if signature:
        out += ["```python", signature, "```", ""]
    out += [doc if doc else "*(no docstring)*", ""]
    return out


def render(modules: List[str] = None) -> str:
    modules = modules or public_modules()
    targets = collect_targets(modules)
    lines = [HEADER, "Modules: " + ", ".join(f"[`{m}`](#{anchor(m)})" for m in modules) + ".", ""]
    for modname in modules:
        module = importlib.import_module(modname)
        lines += [f"({anchor(modname)})=", f"## `{modname}`", ""]
        lines += [to_myst(inspect.getdoc(module) or "*(no module docstring)*", modname, targets), ""]
        classes, functions = _members(module)
        for name, cls in classes:
            sig = f"class {name}{_signature(cls)}"
            lines += _entry(3, name, f"{modname}.{name}", sig,
                            to_myst(inspect.getdoc(cls) or "", modname, targets))
            for mname, member, kind in _class_members(cls):
                if kind == "property":
                    sig = f"property {mname}"
                    doc = inspect.getdoc(member) or ""
                else:
                    prefix = "" if kind == "method" else f"@{kind}\n"
                    sig = f"{prefix}{mname}{_signature(member, drop_self=kind != 'staticmethod')}"
                    doc = inspect.getdoc(member) or ""
                lines += _entry(4, f"{name}.{mname}", f"{modname}.{name}.{mname}", sig,
                                to_myst(doc, modname, targets))
        for name, func in functions:
            lines += _entry(3, f"{name}()", f"{modname}.{name}", f"{name}{_signature(func)}",
                            to_myst(inspect.getdoc(func) or "", modname, targets))
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is out of date: run scripts/api_reference.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"api_reference: wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
