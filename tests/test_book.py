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
