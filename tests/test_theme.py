"""The offline theme (_theme/render.mjs) on tiny synthetic sites: it renders the node types the
book uses, and a node of any other type fails the build with one line naming the type, the
page's source file and the line, before any page is written."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RENDER = ROOT / "_theme" / "render.mjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "_theme" / "node_modules" / "katex").exists(),
    reason="node or _theme/node_modules is missing (run `make setup`)")


def _pos(line):
    return {"start": {"line": line, "column": 1}, "end": {"line": line, "column": 1}}


def _render(tmp_path, *children):
    """Render a one-page site (the page book/demo.md with `children` after a paragraph)."""
    site = tmp_path / "site"
    (site / "content").mkdir(parents=True)
    (site / "config.json").write_text(json.dumps(
        {"title": "Demo", "projects": [{"index": "index", "pages": []}]}))
    mdast = {"type": "root", "children": [
        {"type": "paragraph", "position": _pos(3), "children": [{"type": "text", "value": "Hello.", "position": _pos(3)}]},
        *children]}
    (site / "content" / "index.json").write_text(json.dumps(
        {"kind": "Article", "slug": "index", "location": "/book/demo.md",
         "frontmatter": {"title": "Demo"}, "mdast": mdast}))
    out = tmp_path / "html"
    proc = subprocess.run(["node", str(RENDER)], cwd=RENDER.parent, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "BUILD_DIRECTORY": str(out),
                               "RENDER_SITE_DIR": str(site)})
    return proc, out


def test_a_supported_page_renders(tmp_path):
    proc, out = _render(tmp_path, {"type": "heading", "depth": 2, "position": _pos(5),
                                   "children": [{"type": "text", "value": "Part"}]})
    assert proc.returncode == 0, proc.stderr
    html = (out / "index.html").read_text()
    assert "<p>Hello.</p>" in html and ">Part<" in html


def test_an_unsupported_node_fails_with_its_type_file_and_line(tmp_path):
    proc, out = _render(tmp_path, {"type": "thematicBreak", "position": _pos(7)})
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "'thematicBreak'" in lines[0] and "book/demo.md:7:" in lines[0], lines[0]
    assert not (out / "index.html").exists(), "a page was written despite the unsupported node"


def test_an_unsupported_node_without_a_position_gets_the_line_of_its_contents(tmp_path):
    # mystmd drops the position of some directive nodes ({card}) but keeps their contents'
    card = {"type": "card", "children": [
        {"type": "paragraph", "position": _pos(12), "children": [{"type": "text", "value": "Body"}]}]}
    proc, _ = _render(tmp_path, card)
    assert proc.returncode != 0
    assert "'card'" in proc.stderr and "book/demo.md:12:" in proc.stderr, proc.stderr
