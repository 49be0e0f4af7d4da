"""The book as a whole: it builds without warnings, and the library's docstrings point at real labels."""
import re
import subprocess
from pathlib import Path


import strdiff_edu
from strdiff_edu.equations import book_labels

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def test_every_docstring_label_exists_in_the_book():
    refs = {}
    for source in Path(strdiff_edu.__file__).parent.rglob("*.py"):
        for label in re.findall(r"\{ref\}`([^`]+)`", source.read_text(encoding="utf-8")):
            refs.setdefault(label, source.name)
    assert refs, "no docstring names a book label"
    missing = {label: where for label, where in refs.items() if label not in book_labels(BOOK)}
    assert not missing, f"docstrings reference labels that no book page defines: {missing}"


def test_every_labelled_equation_is_implemented_or_shown():
    """Each equation label in Part I is named by a docstring or referenced in the text."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in BOOK.rglob("*.md"))
    code = "\n".join(p.read_text(encoding="utf-8") for p in Path(strdiff_edu.__file__).parent.rglob("*.py"))
    for label in sorted(l for l in book_labels(BOOK) if l.startswith("eq-")):
        uses = text.count(f"`{label}`") + code.count(f"`{label}`")
        assert uses >= 1, f"equation {label} is never referenced"


def test_book_pages_are_in_the_toc_and_stored_without_outputs():
    toc = (ROOT / "myst.yml").read_text(encoding="utf-8")
    for page in BOOK.rglob("*.md"):
        assert str(page.relative_to(ROOT)) in toc, f"{page} is not listed in myst.yml's toc"
    assert not list(BOOK.rglob("*.ipynb")) or all(
        '"output_type"' not in p.read_text() for p in BOOK.rglob("*.ipynb"))


def test_book_builds_without_errors_or_warnings():
    proc = subprocess.run([str(ROOT / "scripts" / "build_book.sh"), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# calls that put something on the page (text, a table, a figure, formulas, source code)
_SHOWS = {"print", "display", "show", "show_images", "show_source", "imshow", "plot", "subplots",
          "figure", "errorbar", "scatter", "hist", "bar", "interact", "savefig"}


def _code_cells(page: Path):
    """(line, options, source) of each code cell of a MyST notebook page."""
    text = page.read_text(encoding="utf-8")
    for m in re.finditer(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S):
        lines = m.group(1).split("\n")
        yield (text[:m.start()].count("\n") + 1, [l for l in lines if l.startswith(":")],
               "\n".join(l for l in lines if not l.startswith(":")))


def test_cells_that_only_check_are_hidden_from_the_page():
    """A cell of asserts that shows nothing is run (by nbval and the build) but not shown:
    tagged remove-cell or remove-input."""
    import ast

    shown = []
    for page in sorted(BOOK.rglob("*.md")):
        for line, options, source in _code_cells(page):
            tree = ast.parse(source)
            if not any(isinstance(n, ast.Assert) for n in ast.walk(tree)):
                continue
            calls = {getattr(n.func, "attr", getattr(n.func, "id", None))
                     for n in ast.walk(tree) if isinstance(n, ast.Call)}
            if calls & _SHOWS or (tree.body and isinstance(tree.body[-1], ast.Expr)):
                continue
            if not any(t in o for o in options for t in ("remove-cell", "remove-input")):
                shown.append(f"{page.relative_to(ROOT)}:{line}")
    assert not shown, "check-only cells shown on the page (tag them remove-cell):\n" + "\n".join(shown)
