"""The equation map (strdiff_edu/equations.py, book/reference/equation_map.md), the notation page
against myst.yml's macros, and the generated API reference."""
import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import strdiff_edu
from strdiff_edu import equations as E

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
LABELS = E.book_labels(BOOK)


def _resolve(dotted: str):
    """Import ``a.b.c.Name.attr``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_paper_equation_is_mapped_once():
    assert [eq.number for eq in E.EQUATIONS] == list(range(1, 18))
    for eq in E.EQUATIONS:
        assert eq.label.startswith("eq-") and eq.implemented_by and eq.tests and eq.content


@pytest.mark.parametrize("eq", E.EQUATIONS, ids=lambda eq: f"eq{eq.number}")
def test_labels_exist_in_the_book(eq):
    for label in (eq.label, *eq.related):
        assert label in LABELS, f"paper Eq. {eq.number}: label {label} is not defined in book/"


@pytest.mark.parametrize("eq", E.EQUATIONS, ids=lambda eq: f"eq{eq.number}")
def test_implementations_import_and_name_their_label(eq):
    for dotted in eq.implemented_by:
        obj = _resolve(dotted)
        assert callable(obj), f"{dotted} is not a function or class"
        doc = inspect.getdoc(obj) or ""
        assert f"{{ref}}`{eq.label}`" in doc, (
            f"paper Eq. {eq.number}: the docstring of {dotted} does not name {{ref}}`{eq.label}`")


@pytest.mark.parametrize("eq", E.EQUATIONS, ids=lambda eq: f"eq{eq.number}")
def test_named_tests_exist(eq):
    for nodeid in eq.tests:
        path, _, name = nodeid.partition("::")
        source = ROOT / path
        assert source.is_file(), f"paper Eq. {eq.number}: no test file {path}"
        tree = ast.parse(source.read_text(encoding="utf-8"))
        names = {node.name for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert name.startswith("test") and name in names, (
            f"paper Eq. {eq.number}: {path} has no test function {name}")


def test_docstring_labels_exist_including_new_modules():
    """Every {ref} in the library names a label of the book (as test_book, with the map's labels)."""
    refs = {}
    for source in sorted(Path(strdiff_edu.__file__).parent.rglob("*.py")):
        for label in re.findall(r"\{ref\}`([^`]+)`", source.read_text(encoding="utf-8")):
            refs.setdefault(label, source.name)
    missing = {label: where for label, where in refs.items() if label not in LABELS}
    assert not missing, f"docstrings reference labels that no book page defines: {missing}"


def test_the_page_shows_the_current_table():
    page = (BOOK / "reference" / "equation_map.md").read_text(encoding="utf-8")
    inside = page.partition(E.START)[2].partition(E.END)[0]
    assert inside.strip() == E.markdown_table(LABELS).strip(), (
        "book/reference/equation_map.md is out of date: run `python -m strdiff_edu.equations --write`")


def test_markdown_table_does_not_reference_missing_labels():
    table = E.markdown_table({"eq-mr-sde"})
    assert "{eq}`eq-mr-sde`" in table and "{eq}`eq-nll`" not in table and "`eq-nll` (not" in table


# ----------------------------------------------------------------------------- notation page
def _myst_macros():
    math = yaml.safe_load((ROOT / "myst.yml").read_text(encoding="utf-8"))["project"]["math"]
    return {name.lstrip("\\"): body for name, body in math.items()}


def _notation_table():
    """{macro name: row} of the notation page's macro table (rows whose first cell is `\\name`)."""
    text = (BOOK / "notation.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`\\([A-Za-z]+)(\{\.\.\.\})?`\s*\|(.*)", line)
        if m:
            rows[m.group(1)] = m.group(3)
    return text, rows


def test_notation_page_lists_exactly_the_myst_macros():
    macros = _myst_macros()
    assert macros, "myst.yml defines no math macros"
    text, rows = _notation_table()
    assert set(rows) == set(macros), (
        f"notation.md's macro table {sorted(rows)} differs from myst.yml's {sorted(macros)}")
    for name, body in macros.items():
        row = rows[name]
        assert f"\\{name}" in row, f"the row of \\{name} does not show it rendered"
        takes_argument = "#1" in body
        assert bool(re.search(rf"`\\{name}\{{\.\.\.\}}`", text)) == takes_argument, (
            f"\\{name}: write it `\\{name}{{...}}` in the table exactly when it takes an argument")


def test_every_macro_is_used_in_the_symbol_table_or_the_book():
    """Each myst.yml macro is used outside the macro table: on the notation page's symbol table
    or, for helpers like \\E, somewhere in the chapters."""
    text, _ = _notation_table()
    symbols = text.partition("## Macros")[0]
    chapters = "\n".join(p.read_text(encoding="utf-8") for p in BOOK.rglob("*.md")
                         if p.name != "notation.md")
    for name in _myst_macros():
        pattern = rf"\\{name}(?![A-Za-z])"
        assert re.search(pattern, symbols) or re.search(pattern, chapters), f"\\{name} is never used"


def test_macros_used_in_the_book_are_defined():
    """A backslash command used in the book's math that looks like one of ours (a bar/hat
    shorthand, or a single capital) must be defined in myst.yml."""
    macros = set(_myst_macros())
    text = "\n".join(p.read_text(encoding="utf-8") for p in BOOK.rglob("*.md"))
    used = set(re.findall(r"\\([A-Za-z]+(?:bar|hat))(?![A-Za-z])", text))
    used |= set(re.findall(r"\\([A-Z])(?![A-Za-z])", text))
    katex_builtin = {"Delta", "Theta", "Gamma", "Lambda", "Omega", "Sigma", "Phi", "Psi", "Pi",
                     "overbar", "widehat", "widebar", "L", "O", "S", "P"}
    assert not (used - macros - katex_builtin), f"undefined macros: {sorted(used - macros - katex_builtin)}"


# ----------------------------------------------------------------------------- API reference
def test_api_reference_is_deterministic_and_covers_every_module(tmp_path):
    script = ROOT / "scripts" / "api_reference.py"
    outs = []
    for name in ("a.md", "b.md"):
        subprocess.run([sys.executable, str(script), "--out", str(tmp_path / name)], cwd=ROOT,
                       check=True, capture_output=True, timeout=120)
        outs.append((tmp_path / name).read_text(encoding="utf-8"))
    assert outs[0] == outs[1]
    text = outs[0]
    modules = [m.name for m in sorted((ROOT / "strdiff_edu").rglob("*.py"))]
    for path in sorted((ROOT / "strdiff_edu").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if any(p.startswith("_") for p in parts):
            continue
        assert f"## `{'.'.join(parts)}`" in text, f"module {'.'.join(parts)} is missing"
    assert modules
    assert " at 0x" not in text and str(ROOT) not in text
    # Sphinx roles are rewritten; {ref} roles are kept for MyST.
    assert not re.search(r":(class|func|meth|mod|data):`", text)
    assert "{ref}`eq-ideal-reverse`" in text
    assert "`MeanRevertingSDE.ideal_reverse_state`" in text
