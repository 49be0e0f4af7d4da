"""The rendered book, driven in a headless browser: every page loads, its math is typeset,
its links and images work, the search box finds pages, equation and figure numbers carry their
chapter, Markdown and HTML table outputs render as tables, and the layout holds at desktop
(1280 px) and phone (420 px) width. Screenshots of a few pages at both widths are saved under
``_build/screens/`` (``STRDIFF_SCREENS`` to put them elsewhere) for a person to look at.

The browser is the system's Chromium (Debian package ``chromium``), driven over the Chrome
DevTools protocol through a pipe (``--remote-debugging-pipe``), so nothing beyond the standard
library is needed. The test skips when no Chromium is installed (``make test`` installs
Debian's package first when it can: scripts/ensure_chromium.sh).

Which HTML is checked: ``_build/html`` when it exists and is newer than every page source,
``myst.yml`` and the renderer (that is the executed book of ``make book``, with notebook
outputs and figures); otherwise the book is rendered here without executing the notebooks
(``scripts/build_book.sh --check`` with ``BOOK_CHECK_HTML``), which takes seconds. Set
``STRDIFF_SITE_DIR`` to check another folder.
"""
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _find_browser():
    explicit = os.environ.get("STRDIFF_CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    return next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)


class Chromium:
    """A headless Chromium and a minimal DevTools-protocol client over its debugging pipe."""

    def __init__(self, executable: str, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="strdiff-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser reads commands from fd 3 and writes replies to fd 4.
        keep_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        keep_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)

        def child_fds():
            os.dup2(keep_r, 3)
            os.dup2(keep_w, 4)

        args = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--allow-file-access-from-files", "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=child_fds, close_fds=False)
        for fd in (to_browser_r, from_browser_w, keep_r, keep_w):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events = []

    def close(self):
        try:
            os.close(self._to_browser)
            os.close(self._from_browser)
        except OSError:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its debugging pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict = None, session: str = None) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method and ev.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
            self.events.append(ev)

    def open(self, url: str) -> str:
        """A new tab showing `url`, loaded; returns its session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        self.target_of = getattr(self, "target_of", {})
        self.target_of[session] = target
        return session

    def evaluate(self, session: str, expression: str):
        res = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                             "returnByValue": True}, session=session)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def problems(self, session: str) -> list:
        """Script exceptions, console errors and failed loads seen by this tab so far."""
        out, keep = [], []
        for ev in self.events:
            if ev.get("sessionId") != session:
                keep.append(ev)
                continue
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"script exception: {p['exceptionDetails'].get('text')} "
                           f"{p['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"console: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Network.loadingFailed" and not p.get("canceled"):
                out.append(f"load failed: {p.get('errorText')} (request {p.get('requestId')})")
        self.events = keep
        return out

    def close_tab(self, session: str):
        self.send("Target.closeTarget", {"targetId": self.target_of.pop(session)})


# What each page reports about itself (run after the load event).
PAGE_REPORT = r"""
(async () => {
  // Lazy images below the fold would never load in a headless tab: load them all now.
  const imgs = [...document.images];
  imgs.forEach((img) => { img.loading = 'eager'; });
  await Promise.all(imgs.map((img) => img.decode().catch(() => null)));
  const article = document.querySelector('article.page');
  const prose = article ? article.cloneNode(true) : document.body.cloneNode(true);
  prose.querySelectorAll('pre, code, .katex, script, .output, .cell-outputs').forEach((e) => e.remove());
  const text = prose.textContent;
  const rawTex = [];
  for (const pat of ['$$', '\\begin{', '\\frac', '\\mathbb', '\\theta', '\\sigma', '{eq}', '{cite', '{ref}', ':label:']) {
    if (text.includes(pat)) {
      const at = text.indexOf(pat);
      rawTex.push(text.slice(Math.max(0, at - 40), at + 40).replace(/\s+/g, ' '));
    }
  }
  const eqNumber = {};
  document.querySelectorAll('.math-display[id]').forEach((d) => {
    const n = d.querySelector('.eq-number');
    if (n) eqNumber[d.id] = n.textContent.trim();
  });
  // numbered figures: id -> {number shown in the caption, images inside}
  const figures = {};
  document.querySelectorAll('figure[id]').forEach((f) => {
    const cap = f.querySelector(':scope > figcaption .caption-number');
    if (cap) figures[f.id] = { caption: cap.textContent.trim(), images: f.querySelectorAll('img').length };
  });
  // references in doubled parentheses, "((3.2.1))": the prose, and each equation link itself
  const doubled = [];
  const m = text.match(/\(\(\s*\d+(\.\d+)*[a-z]?\s*\)\)/g);
  if (m) doubled.push(...m);
  document.querySelectorAll('a.xref.equation').forEach((a) => {
    const prev = a.previousSibling ? a.previousSibling.textContent : '';
    const next = a.nextSibling ? a.nextSibling.textContent : '';
    if (/\(\s*$/.test(prev) && a.textContent.trim().startsWith('(')) doubled.push(prev.slice(-20) + a.textContent + next.slice(0, 5));
  });
  // Markdown / HTML outputs: text that still looks like a pipe table once the tables are removed
  const rawTables = [];
  let outputTables = 0;
  document.querySelectorAll('.output-markdown, .output-html').forEach((o) => {
    outputTables += o.querySelectorAll('table').length;
    const c = o.cloneNode(true);
    c.querySelectorAll('table').forEach((t) => t.remove());
    const rows = (c.textContent.match(/^\s*\|.*\|\s*$/gm) || []);
    if (rows.length >= 2) rawTables.push(rows.slice(0, 2).join(' / ').slice(0, 120));
  });
  // fenced code in a Markdown output (library source shown with viz.show_source) left as raw text
  const rawFences = [];
  let outputCode = 0;
  document.querySelectorAll('.output-markdown').forEach((o) => {
    outputCode += o.querySelectorAll('.code-block code.hljs').length;
    const c = o.cloneNode(true);
    c.querySelectorAll('.code-block').forEach((t) => t.remove());
    if (c.textContent.includes('```')) rawFences.push(c.textContent.slice(0, 80));
  });
  // a Markdown table printed as plain text (print() instead of display(Markdown(...)))
  document.querySelectorAll('pre.output').forEach((o) => {
    if (/^\s*\|?\s*:?-{3,}:?\s*\|\s*:?-{3,}/m.test(o.textContent)) rawTables.push('printed: ' + o.textContent.slice(0, 80));
  });
  const chapterEl = document.querySelector('h1 .chapter-number');
  return {
    title: document.title,
    chapter: chapterEl ? chapterEl.textContent.trim() : null,
    doubled,
    rawTables,
    outputTables,
    rawFences,
    outputCode,
    h1: (document.querySelector('h1') || {}).textContent || '',
    ids: [...document.querySelectorAll('[id]')].map((e) => e.id),
    links: [...document.querySelectorAll('a[href]')].map((a) => ({
      href: a.href, raw: a.getAttribute('href'), text: a.textContent.trim(), cls: a.className })),
    images: imgs.map((img) => ({ src: img.currentSrc || img.src, w: img.naturalWidth, ok: img.complete })),
    katex: document.querySelectorAll('.katex').length,
    katexErrors: [...document.querySelectorAll('.katex-error')].map((e) => e.textContent.slice(0, 80)),
    unresolved: [...document.querySelectorAll('.unresolved')].map((e) => e.textContent.slice(0, 80)),
    rawTex,
    eqNumber,
    figures,
    cellImages: document.querySelectorAll('.cell .cell-outputs img').length,
    stylesheets: [...document.styleSheets].map((s) => { try { return s.cssRules.length; } catch (e) { return -1; } }),
    citations: document.querySelectorAll('a.cite').length,
    bibliography: document.querySelectorAll('.bibliography li').length,
    widgetNotes: document.querySelectorAll('.widget-placeholder').length,
    searchVisible: !!document.querySelector('form.search') && !document.querySelector('form.search').hidden,
  };
})()
"""

SEARCH = r"""
(async () => {
  const input = document.querySelector('#search-input');
  input.value = %s;
  input.dispatchEvent(new Event('input'));
  return [...document.querySelectorAll('#search-results a')].map((a) => a.getAttribute('href'));
})()
"""


def _newest_source() -> float:
    sources = [ROOT / "myst.yml", *(ROOT / "book").rglob("*.md"), *(ROOT / "book").rglob("*.bib"),
               *(p for p in (ROOT / "_theme").iterdir() if p.is_file())]
    return max(p.stat().st_mtime for p in sources)


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    explicit = os.environ.get("STRDIFF_SITE_DIR")
    if explicit:
        return Path(explicit)
    built = ROOT / "_build" / "html"
    if (built / "index.html").exists() and (built / "_static" / "search.js").exists() \
            and min(p.stat().st_mtime for p in built.glob("*.html")) >= _newest_source():
        return built
    if not (ROOT / "_theme" / "node_modules" / "katex").exists():
        pytest.skip("_theme/node_modules is missing (run `make setup`), so the book cannot be rendered")
    out = tmp_path_factory.mktemp("site") / "html"
    proc = subprocess.run([str(ROOT / "scripts" / "build_book.sh"), "--check"], cwd=ROOT,
                          env={**os.environ, "BOOK_CHECK_HTML": str(out)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def reports(site_dir):
    exe = _find_browser()
    if exe is None:
        pytest.skip("no Chromium found (install the Debian package `chromium`, or set STRDIFF_CHROMIUM "
                    "to a Chrome/Chromium executable) — the rendered site was not checked in a browser")
    browser = Chromium(exe)
    out = {}
    try:
        for page in sorted(site_dir.glob("*.html")):
            session = browser.open(page.as_uri())
            report = browser.evaluate(session, PAGE_REPORT)
            report["problems"] = browser.problems(session)
            if page.name == "index.html":
                report["search"] = {q: browser.evaluate(session, SEARCH % json.dumps(q))
                                    for q in ("Euler Maruyama", "semantic discrepancy", "SPADE", "zzqqxx")}
            browser.close_tab(session)
            out[page.name] = report
    finally:
        browser.close()
    return out


def test_every_page_loads_with_its_styles_and_no_errors(reports, site_dir):
    assert "index.html" in reports and len(reports) >= 10
    for name, r in reports.items():
        assert r["h1"].strip(), f"{name}: no page title"
        assert r["stylesheets"] and all(n > 0 for n in r["stylesheets"]), f"{name}: a stylesheet did not load"
        assert not r["problems"], f"{name}: {r['problems']}"
        assert not r["unresolved"], f"{name}: unresolved references or citations {r['unresolved']}"


def test_math_is_typeset(reports):
    for name, r in reports.items():
        assert not r["katexErrors"], f"{name}: KaTeX errors {r['katexErrors']}"
        assert not r["rawTex"], f"{name}: untypeset markup in the text: {r['rawTex']}"
    chapters = [n for n in reports if n not in ("index.html", "references.html")]
    without_math = [n for n in chapters if reports[n]["katex"] == 0]
    # Chapters are mathematical; a reference page (credits, troubleshooting) may have no math.
    assert len(without_math) < len(chapters) / 2, f"pages without typeset math: {without_math}"
    assert reports["brownian-motion.html"]["katex"] > 10


def test_internal_links_and_anchors_resolve(reports, site_dir):
    ids = {name: set(r["ids"]) for name, r in reports.items()}
    broken = []
    for name, r in reports.items():
        for link in r["links"]:
            url = urlparse(link["href"])
            if url.scheme != "file":
                continue
            target = Path(unquote(url.path))
            if not target.exists():
                broken.append(f"{name}: {link['raw']} -> missing file")
                continue
            if url.fragment and target.suffix == ".html":
                rel = target.relative_to(site_dir.resolve()).as_posix() if target.is_relative_to(site_dir.resolve()) else None
                if rel not in ids:
                    broken.append(f"{name}: {link['raw']} -> outside the site")
                elif unquote(url.fragment) not in ids[rel]:
                    broken.append(f"{name}: {link['raw']} -> no element with this id")
    assert not broken, "\n".join(broken)


def test_equation_references_show_the_equation_number(reports, site_dir):
    numbers = {name: r["eqNumber"] for name, r in reports.items()}
    assert sum(len(v) for v in numbers.values()) > 20, "hardly any numbered equations"
    checked, wrong = 0, []
    for name, r in reports.items():
        for link in r["links"]:
            if "xref" not in link["cls"] or "equation" not in link["cls"]:
                continue
            url = urlparse(link["href"])
            page = Path(unquote(url.path)).name
            shown = numbers.get(page, {}).get(unquote(url.fragment))
            if not re.match(r"\(?\d", link["text"]):
                continue  # text the author wrote ("Eq. 5's weights"), not a generated number
            checked += 1
            if shown is None or link["text"] not in (shown, shown.strip("()")):
                wrong.append(f"{name}: link {link['text']!r} to {page}#{url.fragment} numbered {shown!r}")
    assert checked > 20 and not wrong, "\n".join(wrong)


def test_equation_numbers_carry_their_chapter(reports):
    """Equation (3.2.1) is the first equation of chapter 3.2: every numbered equation of a
    chapter page starts with the chapter number shown in the page title."""
    chapters = {name: r["chapter"] for name, r in reports.items() if r["chapter"]}
    assert len(chapters) >= 20, f"hardly any numbered chapters: {chapters}"
    assert chapters.get("brownian-motion.html") == "1.1" and chapters.get("sampler.html") == "5.1", chapters
    wrong = [f"{name}#{eq}: {shown!r}" for name, r in reports.items() if r["chapter"]
             for eq, shown in r["eqNumber"].items()
             if not re.fullmatch(rf"\({re.escape(r['chapter'])}\.\d+[a-z]?\)", shown)]
    assert not wrong, "equation numbers without their chapter:\n" + "\n".join(wrong)


def test_no_doubled_parentheses_around_references(reports):
    bad = [f"{name}: {d!r}" for name, r in reports.items() for d in r["doubled"]]
    assert not bad, "references in doubled parentheses:\n" + "\n".join(bad)


def test_markdown_and_html_tables_render_as_tables(reports):
    bad = [f"{name}: {t}" for name, r in reports.items() for t in r["rawTables"]]
    assert not bad, "table outputs shown as raw text:\n" + "\n".join(bad)
    if any(r["cellImages"] for r in reports.values()):  # executed book: notebooks display tables
        assert sum(r["outputTables"] for r in reports.values()) >= 1, "no notebook output table rendered"


def test_source_listings_render_as_highlighted_code(reports):
    bad = [f"{name}: {t!r}" for name, r in reports.items() for t in r["rawFences"]]
    assert not bad, "code fences in Markdown outputs shown as raw text:\n" + "\n".join(bad)
    if any(r["cellImages"] for r in reports.values()):  # executed book: chapters show library source
        assert sum(r["outputCode"] for r in reports.values()) >= 3, "library source listings missing"


def test_figures_are_numbered_and_references_show_their_number(reports):
    figures = {name: r["figures"] for name, r in reports.items()}
    captions = [(name, fid, f["caption"]) for name, figs in figures.items() for fid, f in figs.items()]
    assert len(captions) >= 10, f"hardly any numbered figures: {captions}"
    number = {}
    for name, fid, caption in captions:
        m = re.fullmatch(r"Figure\s(\d+(?:\.\d+)*):", caption)
        assert m, f"{name}#{fid}: caption number {caption!r} is not 'Figure N:'"
        chapter = reports[name]["chapter"]
        assert not chapter or m.group(1).startswith(chapter + "."), (
            f"{name}#{fid}: caption {caption!r} does not carry its chapter {chapter}")
        number[(name, fid)] = m.group(1)
    # executed book (plots present): every figure shows its plot
    if any(r["cellImages"] for r in reports.values()):
        empty = [f"{name}#{fid}" for name, figs in figures.items() for fid, f in figs.items() if not f["images"]]
        assert not empty, f"figures without an image: {empty}"
    checked, wrong = 0, []
    for name, r in reports.items():
        for link in r["links"]:
            if "xref" not in link["cls"] or "figure" not in link["cls"].split():
                continue
            url = urlparse(link["href"])
            page = Path(unquote(url.path)).name
            shown = number.get((page, unquote(url.fragment)))
            checked += 1
            if shown is None or link["text"] != f"Figure\u00a0{shown}" and link["text"] != f"Figure {shown}":
                wrong.append(f"{name}: link {link['text']!r} to {page}#{url.fragment} numbered {shown!r}")
    assert checked >= len(captions) and not wrong, "\n".join(wrong) or f"only {checked} figure references"


def test_images_load(reports):
    bad = [f"{name}: {img['src'][:120]}" for name, r in reports.items() for img in r["images"]
           if not img["ok"] or img["w"] == 0]
    assert not bad, "\n".join(bad)


def test_citations_link_to_a_bibliography(reports):
    assert reports["references.html"]["bibliography"] >= 3
    cited = [n for n, r in reports.items() if r["citations"]]
    assert cited, "no page cites anything"
    for name in cited:
        assert reports[name]["bibliography"] > 0, f"{name} cites works but lists no references"


def test_search_finds_pages(reports):
    r = reports["index.html"]
    assert r["searchVisible"], "the search box stayed hidden (search.js or its index did not load)"
    results = r["search"]
    assert any(h.startswith("brownian-motion.html") for h in results["Euler Maruyama"]), results
    assert any(h.startswith("semantic-discrepancy.html") for h in results["semantic discrepancy"]), results
    assert any(h.startswith("architecture.html") for h in results["SPADE"]), results
    assert results["zzqqxx"] == []


# ------------------------------------------------------------------ layout and screenshots
# Pages looked at in both widths: a chapter with wide tables and long code, one with displayed
# SymPy output, one with a diagram, and the equation map (the widest table).
SCREEN_PAGES = ("index.html", "sampler.html", "structure-guided-state.html", "architecture.html",
                "results-and-ablations.html", "equation-map.html")
WIDTHS = {"desktop": (1280, 900), "phone": (420, 860)}

LAYOUT_REPORT = r"""
(() => {
  const vis = (e) => !!e && getComputedStyle(e).display !== 'none' && e.getClientRects().length > 0;
  // an 88-column line in the page's code style: does it fit the code column unwrapped?
  let fits88 = null;
  const pre = document.querySelector('.cell-input pre.code');
  if (pre) {
    const probe = document.createElement('span');
    probe.style.whiteSpace = 'pre';
    probe.textContent = 'x'.repeat(88);
    pre.querySelector('code').appendChild(probe);
    const cs = getComputedStyle(pre);
    const inner = pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    fits88 = probe.getBoundingClientRect().width <= inner + 0.5;
    probe.remove();
  }
  const overflowingCode = [...document.querySelectorAll('pre.code')]
    .filter((p) => p.scrollWidth > p.clientWidth + 1).length;
  // wide tables scroll inside their own box, never the page
  const tablesOutsideScroller = [...document.querySelectorAll('article table')].filter((t) => {
    for (let e = t.parentElement; e && e.tagName !== 'ARTICLE'; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if (o === 'auto' || o === 'scroll') return false;
    }
    return t.getBoundingClientRect().width > document.querySelector('article').clientWidth + 1;
  }).length;
  return {
    pageWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    navListVisible: vis(document.querySelector('.nav-list')),
    navButtonVisible: vis(document.querySelector('.nav-button')),
    fits88,
    overflowingCode,
    tablesOutsideScroller,
  };
})()
"""


def _screens_dir() -> Path:
    out = Path(os.environ.get("STRDIFF_SCREENS", ROOT / "_build" / "screens"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def layouts(site_dir):
    import base64

    exe = _find_browser()
    if exe is None:
        pytest.skip("no Chromium found (install the Debian package `chromium`, or set STRDIFF_CHROMIUM)")
    screens = _screens_dir()
    browser = Chromium(exe)
    out = {}
    try:
        for width_name, (w, h) in WIDTHS.items():
            for name in SCREEN_PAGES:
                page = site_dir / name
                if not page.exists():
                    continue
                session = browser.open("about:blank")
                browser.send("Emulation.setDeviceMetricsOverride",
                             {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": width_name == "phone"},
                             session=session)
                browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
                browser.wait_event("Page.loadEventFired", session)
                browser.evaluate(session, "Promise.all([...document.images].map((i) => "
                                          "{ i.loading = 'eager'; return i.decode().catch(() => null); }))")
                report = browser.evaluate(session, LAYOUT_REPORT)
                stem = f"{Path(name).stem}-{w}"

                def shot(suffix):
                    data = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
                    (screens / f"{stem}{suffix}.png").write_bytes(base64.b64decode(data))

                shot("")
                # a second view further down: the first table, wide figure or displayed output
                if browser.evaluate(session, "(() => { const e = document.querySelector("
                                             "'article .table-wrapper, article figure, article .output-latex'); "
                                             "if (!e) return false; e.scrollIntoView({block: 'start'}); "
                                             "return true; })()"):
                    time.sleep(0.2)
                    shot("-detail")
                if width_name == "phone":
                    # the contents button opens the table of contents
                    browser.evaluate(session, "window.scrollTo(0, 0); document.querySelector('.nav-button').click()")
                    time.sleep(0.2)
                    report["navListAfterClick"] = browser.evaluate(
                        session, "getComputedStyle(document.querySelector('.nav-list')).display !== 'none'")
                    if name == "index.html":
                        shot("-contents")
                report["problems"] = browser.problems(session)
                browser.close_tab(session)
                out[(width_name, name)] = report
    finally:
        browser.close()
    return out


def test_layout_at_desktop_width(layouts):
    for (width, name), r in layouts.items():
        if width != "desktop":
            continue
        assert r["navListVisible"] and not r["navButtonVisible"], f"{name}: contents not shown in the sidebar"
        assert r["pageWidth"] <= r["viewport"], f"{name}: the page scrolls sideways ({r['pageWidth']} px)"
        assert r["fits88"] in (None, True), f"{name}: an 88-column code line does not fit the code column"
        assert r["overflowingCode"] == 0, f"{name}: {r['overflowingCode']} code blocks scroll sideways"
        assert r["tablesOutsideScroller"] == 0, f"{name}: a wide table is not in a scrolling box"
        assert not r["problems"], f"{name}: {r['problems']}"


def test_layout_at_phone_width(layouts):
    assert any(w == "phone" for w, _ in layouts)
    for (width, name), r in layouts.items():
        if width != "phone":
            continue
        assert r["navButtonVisible"] and not r["navListVisible"], (
            f"{name}: at 420 px the contents should collapse behind the Contents button")
        assert r["navListAfterClick"], f"{name}: the Contents button does not open the contents"
        assert r["pageWidth"] <= r["viewport"] + 1, f"{name}: the page scrolls sideways ({r['pageWidth']} px)"
        assert r["overflowingCode"] == 0, f"{name}: {r['overflowingCode']} code blocks scroll sideways"
        assert r["tablesOutsideScroller"] == 0, f"{name}: a wide table is not in a scrolling box"


def test_screenshots_are_saved(layouts):
    screens = _screens_dir()
    for width in (1280, 420):
        assert list(screens.glob(f"*-{width}.png")), f"no screenshots at {width} px in {screens}"
