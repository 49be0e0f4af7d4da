// Offline static-HTML renderer for a mystmd (Jupyter Book 2) site.
//
// mystmd runs this script (template.yml `build: render:`) from the template
// folder after it has written the site content to <project>/_build/site:
//   config.json            navigation (projects[].pages, with levels/parts)
//   content/<slug>.json    one page: frontmatter, mdast, references
//   public/                images, large outputs, downloads
// and sets BUILD_DIRECTORY=<project>/_build/html, where we write one HTML page
// per document plus _static/ (CSS, KaTeX fonts) and build/ (the public files).
//
// Everything is rendered at build time: math with KaTeX (project `math`
// macros included), code with highlight.js. The pages need no JavaScript and
// no network; the one script, a client-side search over page titles, headings
// and text (_static/search.js with the index _static/search-index.js, a .js
// file rather than JSON so that it also loads from file:// URLs), only adds a
// search box to the sidebar. Problems are reported on stderr prefixed with a warning sign,
// which the book build script treats as a failure.
//
// Only the mdast node types the book uses are rendered (NODE_TYPES below). A page with any
// other node fails the build before anything is written, with one line per such node naming
// its type, source file and line: add a case to PageRenderer.nodeInner (and the type to
// NODE_TYPES) or write the markup another way. The site JSON is mystmd's own, undocumented
// format: pyproject.toml pins jupyter-book to the minor version this file was tested with.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import katex from 'katex';
import hljs from 'highlight.js';

const require = createRequire(import.meta.url);
const THEME_DIR = path.dirname(fileURLToPath(import.meta.url));

const OUT = process.env.BUILD_DIRECTORY;
if (!OUT) {
  console.error('⛔ render.mjs: BUILD_DIRECTORY is not set (this script is run by `jupyter-book build --html`)');
  process.exit(1);
}
// RENDER_SITE_DIR lets scripts/build_book.sh --check render a `--site` build
// into a scratch folder without touching _build/html.
const SITE = process.env.RENDER_SITE_DIR || path.join(path.dirname(OUT), 'site');
const PUBLIC = path.join(SITE, 'public');
const ASSETS = 'build'; // public files are copied to <OUT>/build/
const STATIC = '_static';

let warnings = 0;
function warn(msg) {
  warnings += 1;
  console.error(`⚠️  render.mjs: ${msg}`);
}

// The node types PageRenderer.nodeInner renders: those the book's pages produce (mystmd of
// jupyter-book 2.1). Anything else is an error (see checkNodeTypes).
const NODE_TYPES = new Set([
  'root', 'block', 'text', 'paragraph', 'heading', 'emphasis', 'strong', 'superscript', 'inlineCode',
  'break', 'blockquote', 'comment', 'span', 'list', 'listItem', 'link', 'crossReference',
  'container', 'caption', 'captionNumber', 'table', 'tableRow', 'tableCell', 'math', 'inlineMath',
  'code', 'outputs', 'output', 'admonition', 'admonitionTitle', 'cite', 'citeGroup', 'bibliography',
]);

class UnsupportedNode extends Error {
  constructor(node, where) {
    super(`${where}: node type '${node.type}' is not supported by the offline theme (_theme/render.mjs renders only the types the book uses: add a case there or write this markup another way)`);
  }
}

// ------------------------------------------------------------------ helpers
const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
const attrs = (obj) =>
  Object.entries(obj)
    .filter(([, v]) => v !== undefined && v !== null && v !== false && v !== '')
    .map(([k, v]) => (v === true ? ` ${k}` : ` ${k}="${esc(v)}"`))
    .join('');
const stripAnsi = (s) => String(s ?? '').replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\x1b[()][A-Z0-9]/g, '');
const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
// mdast `style` is an object ({color: 'purple'}) or a string
const cssText = (style) =>
  !style || typeof style === 'string'
    ? style || undefined
    : Object.entries(style)
        .map(([k, v]) => `${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}:${v}`)
        .join(';') || undefined;

// Split highlight.js HTML into lines, re-opening the spans a line break cut.
function splitHighlighted(html) {
  const lines = [];
  const open = [];
  for (const raw of html.split('\n')) {
    const prefix = open.join('');
    for (const m of raw.matchAll(/<span[^>]*>|<\/span>/g)) {
      if (m[0] === '</span>') open.pop();
      else open.push(m[0]);
    }
    lines.push(prefix + raw + '</span>'.repeat(open.length));
  }
  return lines;
}

// Apply carriage returns the way a terminal does (tqdm progress bars etc.).
function applyCarriageReturns(text) {
  return text
    .split('\n')
    .map((line) => {
      const parts = line.split('\r');
      let out = '';
      for (const part of parts) out = part + out.slice(part.length);
      return out;
    })
    .join('\n');
}

function toText(node) {
  if (!node) return '';
  if (typeof node.value === 'string' && !node.children) return node.value;
  return (node.children ?? []).map(toText).join('');
}

// A notebook output that is a picture (a plot): what a figure embedding the cell shows.
function isFigureOutput(o) {
  const j = o?.jupyter_data;
  if (!j || !['display_data', 'execute_result', 'update_display_data'].includes(j.output_type)) return false;
  return Object.keys(j.data ?? {}).some((mime) => mime.startsWith('image/'));
}

function slugify(text) {
  return (
    text
      .toLowerCase()
      .normalize('NFKD')
      .replace(/[\u0300-\u036f]/g, '')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'section'
  );
}

// ------------------------------------------------------------------ site model
const config = readJson(path.join(SITE, 'config.json'));
const project = (config.projects ?? [])[0];
if (!project) {
  console.error('⛔ render.mjs: _build/site/config.json lists no project');
  process.exit(1);
}
const indexSlug = project.index ?? 'index';
const siteTitle = config.title || project.title || 'Book';
const brand = config.options?.logo_text || siteTitle;

function loadPage(slug) {
  const file = path.join(SITE, 'content', `${slug}.json`);
  if (!fs.existsSync(file)) {
    warn(`no content file for page '${slug}' (${file})`);
    return null;
  }
  return readJson(file);
}

// nav entries: {kind: 'page'|'part', slug, title, level}
const nav = [];
const indexData = loadPage(indexSlug);
nav.push({ kind: 'page', slug: indexSlug, title: indexData?.frontmatter?.title ?? siteTitle, level: 1 });
for (const p of project.pages ?? []) {
  if (p.slug) nav.push({ kind: 'page', slug: p.slug, title: p.title ?? p.slug, level: p.level ?? 1 });
  else if (p.title) nav.push({ kind: 'part', title: p.title, level: p.level ?? 1 });
}
const pages = nav.filter((n) => n.kind === 'page');
const slugs = new Set(pages.map((p) => p.slug));
const fileOf = (slug) => (slug === indexSlug ? 'index.html' : `${slug}.html`);

// Chapter numbers: the pages of "Part N — ..." are chapters N.1, N.2, ... (solutions pages
// included). Equations, figures and tables carry them: equation (3.2.1) is the first equation
// of chapter 3.2, so a reference from any page is unambiguous. Pages outside a numbered part
// (preface, reference pages) have no chapter number.
const ROMAN = { I: 1, V: 5, X: 10, L: 50, C: 100 };
function romanToInt(r) {
  let total = 0;
  for (let i = 0; i < r.length; i += 1) {
    const v = ROMAN[r[i]];
    total += i + 1 < r.length && ROMAN[r[i + 1]] > v ? -v : v;
  }
  return total;
}
const chapterOf = new Map();
{
  let part = null;
  let chapter = 0;
  for (const n of nav) {
    if (n.kind === 'part') {
      const m = String(n.title).match(/^Part\s+([IVXLC]+)\b/);
      part = m ? romanToInt(m[1]) : null;
      chapter = 0;
    } else if (n.level <= 1) {
      part = null;
    } else if (part !== null) {
      chapter += 1;
      chapterOf.set(n.slug, `${part}.${chapter}`);
    }
  }
}
const titleOf = new Map(nav.filter((n) => n.kind === 'page').map((n) => [n.slug, n.title]));
// "3.2." for a page of chapter 3.2, "" elsewhere
const numberPrefix = (slug) => (chapterOf.has(slug) ? `${chapterOf.get(slug)}.` : '');
// the page a cross-reference points to: its `url` ("/sampler") when remote, else this page
const slugOfUrl = (url) => String(url ?? '').replace(/^\/+|\/+$/g, '').split('#')[0];
const NUMBERED_KINDS = new Set(['equation', 'subequation', 'figure', 'table', 'code']);

// KaTeX macros: project-wide `math` (myst.yml) merged with page frontmatter.
function macrosFrom(math) {
  const out = {};
  for (const [name, def] of Object.entries(math ?? {})) {
    out[name] = typeof def === 'string' ? def : def?.macro ?? '';
  }
  return out;
}
const projectMacros = macrosFrom(project.math);

// A node's source line: its own (mdast `position`), else its first descendant's (mystmd drops
// the position of some directive nodes but keeps their contents'), else `fallback`.
function lineOf(node, fallback) {
  const first = (n) => n?.position?.start?.line ?? (n?.children ?? []).reduce((line, c) => line ?? first(c), undefined);
  return first(node) ?? fallback;
}

// "book/part1_sde/01_brownian_motion.md:42": a node's source file (the page JSON's `location`)
// and line.
function whereIn(data, slug, node, fallbackLine) {
  const line = lineOf(node, fallbackLine);
  return `${String(data.location ?? slug).replace(/^\//, '')}${line ? `:${line}` : ''}`;
}

// Every node of a page whose type is not in NODE_TYPES, as UnsupportedNode errors (a node
// with no line of its own or in its contents gets the last line seen before it).
function checkNodeTypes(data, slug) {
  const found = [];
  let lastLine;
  const walk = (node) => {
    if (!node || typeof node !== 'object') return;
    lastLine = node.position?.start?.line ?? lastLine;
    if (!NODE_TYPES.has(node.type)) found.push(new UnsupportedNode(node, whereIn(data, slug, node, lastLine)));
    for (const c of node.children ?? []) walk(c);
  };
  walk(data.mdast);
  return found;
}

// ------------------------------------------------------------------ page renderer
class PageRenderer {
  constructor(entry, data) {
    this.entry = entry;
    this.data = data;
    this.file = fileOf(entry.slug);
    this.depth = this.file.split('/').length - 1;
    this.root = '../'.repeat(this.depth);
    this.macros = { ...projectMacros, ...macrosFrom(data.frontmatter?.math) };
    this.toc = [];
    this.ids = new Set();
    this.cite = data.references?.cite ?? { order: [], data: {} };
    this.bibliographyRendered = false;
    // Notebook outputs embedded in a numbered figure (`:::{figure} #cell-label`): mystmd copies
    // the cell's outputs node (same `id`) into the figure. Its plots are drawn once, in the
    // figure; the cell keeps only its other outputs (printed text, tables).
    this.figureOutputs = new Set();
    const walk = (node, inFigure) => {
      if (!node) return;
      if (inFigure && node.type === 'outputs' && node.id) this.figureOutputs.add(node.id);
      const fig = inFigure || (node.type === 'container' && (node.kind ?? 'figure') === 'figure');
      for (const c of node.children ?? []) walk(c, fig);
    };
    walk(data.mdast, false);
  }

  where(node) {
    return whereIn(this.data, this.entry.slug, node);
  }

  // ---- links
  asset(url) {
    return this.root + ASSETS + url;
  }

  resolveUrl(url, node) {
    if (!url) return url;
    if (/^[a-z][a-z0-9+.-]*:/i.test(url) || url.startsWith('//')) return url;
    if (url.startsWith('#')) return url;
    if (!url.startsWith('/')) return url;
    const hashAt = url.indexOf('#');
    const p = (hashAt >= 0 ? url.slice(0, hashAt) : url).replace(/^\/+|\/+$/g, '');
    const hash = hashAt >= 0 ? url.slice(hashAt) : '';
    if (p === '' || p === indexSlug) return this.root + 'index.html' + hash;
    if (slugs.has(p)) return this.root + fileOf(p) + hash;
    if (fs.existsSync(path.join(PUBLIC, p))) return this.asset('/' + p) + hash;
    warn(`${this.where(node)} link target '${url}' is not a page of this book`);
    return url;
  }

  // ---- math
  tex(value, displayMode, node) {
    const opts = { displayMode, macros: this.macros, throwOnError: true, strict: 'ignore', output: 'htmlAndMathml' };
    try {
      return katex.renderToString(value, opts);
    } catch (err) {
      warn(`${this.where(node)} KaTeX cannot render ${JSON.stringify(value.slice(0, 80))}: ${err.message}`);
      return katex.renderToString(value, { ...opts, throwOnError: false });
    }
  }

  // ---- generic
  all(node, ctx = {}) {
    // `inParens`: the child stands inside a parenthesis opened by the text before it (an
    // equation reference there drops its own parentheses: "(see 3.2.1)", never "((3.2.1))").
    let depth = 0;
    const out = [];
    for (const c of node.children ?? []) {
      out.push(this.node(c, { ...ctx, parent: node, inParens: ctx.inParens || depth > 0 }));
      if (c.type === 'text') {
        for (const ch of c.value ?? '') {
          if (ch === '(') depth += 1;
          else if (ch === ')') depth = Math.max(0, depth - 1);
        }
      }
    }
    return out.join('');
  }

  uniqueId(base) {
    let id = base;
    for (let i = 1; this.ids.has(id); i += 1) id = `${base}-${i}`;
    this.ids.add(id);
    return id;
  }

  node(n, ctx = {}) {
    if (!n || n.visibility === 'remove') return '';
    const html = this.nodeInner(n, ctx);
    if (n.visibility === 'hide' && html && !['code', 'outputs'].includes(n.type)) {
      const what = n.kind === 'notebook-code' ? 'code cell' : 'content';
      return `<details class="hidden-content"><summary>Show ${what}</summary>${html}</details>`;
    }
    return html;
  }

  nodeInner(n, ctx) {
    const id = n.html_id || n.identifier || undefined;
    switch (n.type) {
      case 'root':
        return this.all(n, ctx);
      case 'block': {
        if (n.kind === 'notebook-code') return this.cell(n, ctx);
        return `<div${attrs({ class: 'block', id })}>${this.all(n, ctx)}</div>`;
      }
      case 'text':
        return esc(n.value);
      case 'paragraph':
        if (ctx.tight) return this.all(n, ctx);
        return `<p>${this.all(n, ctx)}</p>`;
      case 'heading':
        return this.heading(n, ctx);
      case 'emphasis':
        return `<em>${this.all(n, ctx)}</em>`;
      case 'strong':
        return `<strong>${this.all(n, ctx)}</strong>`;
      case 'superscript':
        return `<sup>${this.all(n, ctx)}</sup>`;
      case 'inlineCode':
        return `<code class="inline">${esc(n.value)}</code>`;
      case 'break':
        return '<br>';
      case 'blockquote':
        return `<blockquote>${this.all(n, ctx)}</blockquote>`;
      case 'comment':
        return '';
      case 'span':
        return `<span${attrs({ class: n.class, id, style: cssText(n.style) })}>${this.all(n, ctx)}</span>`;
      case 'list':
        return this.list(n, ctx);
      case 'listItem': {
        const box = typeof n.checked === 'boolean' ? `<input type="checkbox" disabled${n.checked ? ' checked' : ''}> ` : '';
        return `<li>${box}${this.all(n, ctx)}</li>`;
      }
      case 'link':
        return this.link(n, ctx);
      case 'crossReference':
        return this.crossReference(n, ctx);
      case 'container':
        return this.container(n, ctx);
      case 'caption':
        return `<figcaption>${this.all(n, ctx)}</figcaption>`;
      case 'captionNumber':
        return `<span class="caption-number">${this.numberedText(n, this.entry.slug, false) ?? this.all(n, ctx)}</span> `;
      case 'table':
        return `<div class="table-wrapper"><table${attrs({ id, class: n.class })}>${this.table(n, ctx)}</table></div>`;
      case 'tableRow':
        return `<tr>${this.all(n, ctx)}</tr>`;
      case 'tableCell': {
        const tag = n.header ? 'th' : 'td';
        return `<${tag}${attrs({ colspan: n.colspan, rowspan: n.rowspan, style: n.align ? `text-align:${n.align}` : undefined })}>${this.all(n, { ...ctx, tight: true })}${this.referencedPages(n)}</${tag}>`;
      }
      case 'math':
        return this.displayMath(n);
      case 'inlineMath':
        return `<span class="math-inline">${this.tex(n.value, false, n)}</span>`;
      case 'code':
        return this.code(n);
      case 'outputs':
        return this.outputs(n, ctx);
      case 'output':
        return this.output(n, ctx);
      case 'admonition':
        return this.admonition(n, ctx);
      case 'admonitionTitle':
        return `<p class="admonition-title">${this.all(n, { ...ctx, tight: true })}</p>`;
      case 'cite':
        return this.citeOne(n, ctx);
      case 'citeGroup':
        return this.citeGroup(n, ctx);
      case 'bibliography':
        return this.bibliography();
      default:
        // checkNodeTypes() stops the build before a page gets here; a type listed in
        // NODE_TYPES without a case above is a bug of this file
        throw new UnsupportedNode(n, this.where(n));
    }
  }

  heading(n, ctx) {
    const base = n.html_id || n.identifier || slugify(toText(n));
    const id = this.uniqueId(base);
    const depth = Math.min(Math.max(n.depth ?? 2, 1), 6);
    let number = n.enumerated !== false && n.enumerator ? `<span class="heading-number">${esc(n.enumerator)}</span> ` : '';
    if (depth === 1 && !number && !this.titleNumbered && chapterOf.has(this.entry.slug)) {
      this.titleNumbered = true;
      number = `<span class="chapter-number">${esc(chapterOf.get(this.entry.slug))}</span> `;
    }
    const inner = this.all(n, ctx);
    if (depth >= 2 && depth <= 3) this.toc.push({ id, depth, html: number + inner });
    return `<h${depth} id="${esc(id)}">${number}${inner}<a class="anchor" href="#${esc(id)}" aria-label="Link to this section">#</a></h${depth}>`;
  }

  list(n, ctx) {
    const tag = n.ordered ? 'ol' : 'ul';
    const start = n.ordered && n.start && n.start !== 1 ? n.start : undefined;
    const items = (n.children ?? []).map((c) => this.node(c, { ...ctx, parent: n, tight: n.spread === false })).join('');
    return `<${tag}${attrs({ start })}>${items}</${tag}>`;
  }

  link(n, ctx) {
    const href = this.resolveUrl(n.url, n);
    const external = /^(https?:)?\/\//i.test(href ?? '');
    const inner = this.all(n, ctx) || esc(n.url);
    return `<a${attrs({ href, title: n.title, class: external ? 'external' : undefined, rel: external ? 'noopener' : undefined })}>${inner}</a>`;
  }

  crossReference(n, ctx) {
    const targetSlug = n.remote && n.url ? slugOfUrl(n.url) : this.entry.slug;
    const numbered = this.numberedText(n, targetSlug, !!ctx.inParens);
    const inner = numbered ?? (this.all(n, ctx) || esc(n.identifier ?? n.label ?? '?'));
    const target = n.html_id || n.identifier;
    if (n.resolved === false || !target) {
      warn(`${this.where(n)} unresolved cross-reference '${n.identifier ?? n.label}'`);
      return `<span class="xref unresolved">${inner}</span>`;
    }
    const href = n.remote && n.url ? this.resolveUrl(`${n.url}#${target}`, n) : `#${target}`;
    const title = n.remote && titleOf.has(targetSlug) ? `${chapterOf.has(targetSlug) ? `${chapterOf.get(targetSlug)} ` : ''}${titleOf.get(targetSlug)}` : undefined;
    return `<a${attrs({ class: `xref ${n.kind ?? ''}`, href, title })}>${inner}</a>`;
  }

  // The text of a reference to (or caption number of) a numbered equation, figure or table,
  // with the chapter number of the page that holds it: "(3.2.1)", "Figure 5.1.2". Inside a
  // parenthesis an equation reference drops its own: "(3.2.1)" rather than "((3.2.1))".
  // Undefined when the node is not such a number (its children are rendered as they are).
  numberedText(n, slug, inParens) {
    if (!NUMBERED_KINDS.has(n.kind) || !n.enumerator) return undefined;
    const children = n.children ?? [];
    if (!children.every((c) => c.type === 'text')) return undefined;
    const text = children.map((c) => c.value).join('');
    const template = n.template ?? '';
    // only the generated text ("(%s)", "Figure %s:"); text the author wrote stays as written
    if (!template.includes('%s') || text !== template.replace(/%s/g, n.enumerator)) return undefined;
    const full = numberPrefix(slug) + n.enumerator;
    if (inParens && template === '(%s)') return esc(full);
    return esc(template.replace(/%s/g, full));
  }

  // Pages of the equations a table cell references ("in ch. 1.2", a link titled with the page),
  // so that a table such as the equation map names the page of each equation it lists.
  referencedPages(cell) {
    const found = [];
    const walk = (node) => {
      if (node?.type === 'crossReference' && ['equation', 'subequation'].includes(node.kind) && node.resolved !== false) {
        const slug = node.remote && node.url ? slugOfUrl(node.url) : this.entry.slug;
        if (slug !== this.entry.slug && !found.includes(slug)) found.push(slug);
      }
      for (const c of node?.children ?? []) walk(c);
    };
    walk(cell);
    if (!found.length) return '';
    const links = found.map((slug) => {
      const title = titleOf.get(slug) ?? slug;
      const text = chapterOf.has(slug) ? `ch.\u00a0${chapterOf.get(slug)}` : title;
      return `<a${attrs({ class: 'page-ref', href: this.root + fileOf(slug), title })}>${esc(text)}</a>`;
    });
    return `<span class="referenced-pages">in ${links.join(', ')}</span>`;
  }

  container(n, ctx) {
    const id = n.html_id || n.identifier || undefined;
    const cls = ['container', n.kind ?? 'figure', n.class ?? ''].filter(Boolean).join(' ');
    // captions of tables go on top, of everything else below
    const kids = n.children ?? [];
    const captions = kids.filter((c) => c.type === 'caption');
    const body = kids.filter((c) => !captions.includes(c));
    const cap = captions.map((c) => this.node(c, { ...ctx, parent: n })).join('');
    const main = body
      .map((c) => {
        if (c.type !== 'outputs') return this.node(c, { ...ctx, parent: n, inFigure: true });
        // an embedded notebook cell: its plots (the rest stays with the cell)
        const html = this.outputs(c, { ...ctx, parent: n, inFigure: true, keep: isFigureOutput });
        if (!html && (c.children ?? []).length) {
          warn(`${this.where(captions[0] ?? n)} figure '${n.label ?? n.identifier ?? '?'}' embeds a notebook cell without an image output`);
        }
        return html;
      })
      .join('');
    const inner = n.kind === 'table' || n.kind === 'code' ? cap + main : main + cap;
    return `<figure${attrs({ id, class: cls })}>${inner}</figure>`;
  }

  table(n, ctx) {
    const rows = n.children ?? [];
    let i = 0;
    const head = [];
    while (i < rows.length && (rows[i].children ?? []).every((c) => c.header)) head.push(rows[i++]);
    const body = rows.slice(i);
    const r = (list) => list.map((row) => this.node(row, { ...ctx, parent: n })).join('');
    return (head.length ? `<thead>${r(head)}</thead>` : '') + `<tbody>${r(body)}</tbody>`;
  }

  displayMath(n) {
    const id = n.html_id || n.identifier || undefined;
    const numbered = n.enumerated !== false && n.enumerator;
    // mystmd numbers the whole block; stop KaTeX numbering align/gather/equation
    // rows a second time.
    const value = String(n.value ?? '').replace(/\\(begin|end)\{(align|alignat|gather|equation)\}/g, '\\$1{$2*}');
    const label = numbered ? `(${esc(numberPrefix(this.entry.slug) + n.enumerator)})` : '';
    const num = numbered ? `<span class="eq-number">${id ? `<a href="#${esc(id)}">${label}</a>` : label}</span>` : '';
    return `<div${attrs({ class: 'math-display', id })}><div class="math-body">${this.tex(value, true, n)}</div>${num}</div>`;
  }

  highlight(value, lang) {
    const l = (lang ?? '').toLowerCase().replace(/^ipython3?$/, 'python').replace(/^py$/, 'python');
    if (l && hljs.getLanguage(l)) {
      try {
        return { html: hljs.highlight(value, { language: l, ignoreIllegals: true }).value, lang: l };
      } catch {
        /* fall through */
      }
    }
    return { html: esc(value), lang: l || 'text' };
  }

  code(n) {
    let { html, lang } = this.highlight(n.value ?? '', n.lang);
    const id = n.html_id || n.identifier || undefined;
    const file = n.filename ? `<div class="code-filename">${esc(n.filename)}</div>` : '';
    const emphasize = new Set(n.emphasizeLines ?? []);
    let preClass = 'code';
    let style;
    if (n.showLineNumbers || emphasize.size) {
      const start = Number(n.startingLineNumber ?? 1);
      html = splitHighlighted(html)
        .map((line, i) => `<span class="line${emphasize.has(start + i) ? ' emphasized' : ''}">${line}</span>`)
        .join('\n');
      if (n.showLineNumbers) {
        preClass += ' numbered';
        if (start !== 1) style = `counter-reset: line ${start - 1}`;
      }
    }
    return `<div${attrs({ class: 'code-block', id })}>${file}<pre${attrs({ class: preClass, style })}><code class="hljs language-${esc(lang)}">${html}</code></pre></div>`;
  }

  cell(n, ctx) {
    const id = n.html_id || n.identifier || undefined;
    const parts = [];
    for (const c of n.children ?? []) {
      if (c.visibility === 'remove') continue;
      if (c.type === 'code') {
        const src = this.code(c);
        parts.push(
          c.visibility === 'hide'
            ? `<details class="cell-input hidden"><summary>Show code</summary>${src}</details>`
            : `<div class="cell-input">${src}</div>`,
        );
      } else if (c.type === 'outputs') {
        const shownInFigure = c.id && this.figureOutputs.has(c.id);
        const out = this.outputs(c, shownInFigure ? { ...ctx, keep: (o) => !isFigureOutput(o) } : ctx);
        if (!out) continue;
        parts.push(c.visibility === 'hide' ? `<details class="cell-outputs hidden"><summary>Show output</summary>${out}</details>` : out);
      } else {
        parts.push(this.node(c, { ...ctx, parent: n }));
      }
    }
    if (!parts.length) return '';
    return `<div${attrs({ class: 'cell', id })}>${parts.join('')}</div>`;
  }

  // ---- notebook outputs
  outputs(n, ctx) {
    // merge consecutive stream chunks of the same name (progress bars span chunks)
    const items = [];
    for (const o of n.children ?? []) {
      if (ctx.keep && !ctx.keep(o)) continue;
      const j = o.jupyter_data;
      const last = items[items.length - 1];
      if (j?.output_type === 'stream' && last?.stream === j.name && !j.path && !last.hasPath) {
        last.text += j.text ?? '';
        continue;
      }
      if (j?.output_type === 'stream') items.push({ stream: j.name, text: this.streamText(j, o), hasPath: !!j.path, node: o });
      else items.push({ node: o });
    }
    const html = items
      .map((it) => (it.stream ? this.streamHtml(it.stream, it.text) : this.output(it.node, ctx)))
      .filter(Boolean)
      .join('');
    if (!html) return '';
    const id = n.html_id || n.identifier || undefined;
    return `<div${attrs({ class: 'cell-outputs', id })}>${html}</div>`;
  }

  readPublic(p, node) {
    const file = path.join(PUBLIC, p);
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
    warn(`${this.where(node)} output file ${p} is missing from _build/site/public`);
    return undefined;
  }

  streamText(j, node) {
    if (j.path) return this.readPublic(j.path, node) ?? j.text ?? '';
    return Array.isArray(j.text) ? j.text.join('') : j.text ?? '';
  }

  streamHtml(name, text) {
    const clean = applyCarriageReturns(stripAnsi(text)).replace(/\n+$/, '');
    if (!clean) return '';
    return `<pre class="output stream ${name === 'stderr' ? 'stderr' : 'stdout'}">${esc(clean)}</pre>`;
  }

  output(o, ctx) {
    if ((o.children ?? []).length) return `<div class="output mdast">${this.all(o, ctx)}</div>`;
    const j = o.jupyter_data;
    if (!j) return '';
    const id = o.html_id || o.identifier || undefined;
    switch (j.output_type) {
      case 'stream':
        return this.streamHtml(j.name, this.streamText(j, o));
      case 'error': {
        let tb = j.path ? this.readPublic(j.path, o) : j.traceback;
        if (Array.isArray(tb)) tb = tb.join('\n');
        const text = stripAnsi(tb || `${j.ename}: ${j.evalue}`);
        return `<pre class="output error">${esc(text)}</pre>`;
      }
      case 'display_data':
      case 'execute_result':
      case 'update_display_data': {
        const inner = this.mimeBundle(j.data ?? {}, o);
        return inner ? `<div${attrs({ class: 'output display', id })}>${inner}</div>` : '';
      }
      default:
        return '';
    }
  }

  mimeContent(item, node) {
    if (!item) return undefined;
    if (typeof item === 'string') return item;
    if (item.content !== undefined) return Array.isArray(item.content) ? item.content.join('') : item.content;
    if (item.path) return this.readPublic(item.path, node);
    return undefined;
  }

  latexOutput(src, node) {
    let s = src.trim();
    let m;
    if ((m = s.match(/^\$\$([\s\S]*)\$\$$/)) || (m = s.match(/^\\\[([\s\S]*)\\\]$/)) || (m = s.match(/^\$([\s\S]*)\$$/))) s = m[1];
    s = s.replace(/^\\displaystyle\s*/, '');
    // Typeset in display style but inline mode, so that a long expression (a raw SymPy result)
    // wraps at its top-level relations and operators instead of running off the column.
    try {
      return `<div class="latex-wrap">${katex.renderToString(`\\displaystyle ${s}`, { displayMode: false, macros: this.macros, throwOnError: true, strict: 'ignore' })}</div>`;
    } catch {
      return undefined; // caller falls back to the next representation
    }
  }

  // Small Markdown subset for text/markdown outputs (IPython.display.Markdown): paragraphs,
  // headings, bullet lists, pipe tables (GFM: a header row, a |---|:---:| row, body rows), fenced code,
  // inline code, math, emphasis, links and <br>.
  markdownOutput(src) {
    const inline = (t) => {
      const stash = [];
      const keep = (html) => `\u0000${stash.push(html) - 1}\u0000`;
      t = t.replace(/`([^`]+)`/g, (_, c) => keep(`<code class="inline">${esc(c)}</code>`));
      t = t.replace(/\$\$([^$]+)\$\$/g, (_, m) => keep(this.tex(m, true, null)));
      t = t.replace(/\$([^$\n]+)\$/g, (_, m) => keep(this.tex(m, false, null)));
      t = esc(t)
        .replace(/&lt;br\s*\/?&gt;/gi, '<br>')
        .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
        .replace(/\*([^*]+)\*/g, '<em>$1</em>')
        .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, '<a href="$2">$1</a>');
      return t.replace(/\u0000(\d+)\u0000/g, (_, i) => stash[Number(i)]);
    };
    // a pipe-table row as its cells (a backslash-escaped \| stays in the cell)
    const cells = (line) =>
      line
        .trim()
        .replace(/^\|/, '')
        .replace(/(?<!\\)\|$/, '')
        .split(/(?<!\\)\|/)
        .map((c) => c.trim().replace(/\\\|/g, '|'));
    const isRule = (line) => /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line);
    const table = (lines) => {
      const align = cells(lines[1]).map((c) => (/^:-+:$/.test(c) ? 'center' : /-:$/.test(c) ? 'right' : /^:-/.test(c) ? 'left' : undefined));
      const row = (line, tag) =>
        `<tr>${cells(line).map((c, i) => `<${tag}${attrs({ style: align[i] ? `text-align:${align[i]}` : undefined })}>${inline(c)}</${tag}>`).join('')}</tr>`;
      const body = lines.slice(2).filter((l) => l.trim()).map((l) => row(l, 'td')).join('');
      return `<div class="table-wrapper"><table><thead>${row(lines[0], 'th')}</thead><tbody>${body}</tbody></table></div>`;
    };
    // fenced code blocks (```lang ... ```) first: they may hold blank lines; each becomes a
    // highlighted code block like a page's own, kept out of the paragraph split by a placeholder
    const fenced = [];
    // (an info string `python title="..."` names the block, shown above it like a filename)
    src = src.replace(/\r\n/g, '\n').replace(/^```([\w+-]*)([^\n]*)\n([\s\S]*?)^```[ \t]*$/gm, (_, lang, info, value) => {
      const title = info.match(/title="([^"]*)"/);
      fenced.push(this.code({ value: value.replace(/\n$/, ''), lang: lang || undefined, filename: title ? title[1] : undefined }));
      return `\n\n\u0001${fenced.length - 1}\u0001\n\n`;
    });
    // split into blocks at blank lines, and around tables (a table needs no blank line before it)
    const blocks = [];
    for (const para of src.split(/\n{2,}/)) {
      const lines = para.split('\n');
      let start = 0;
      for (let i = 0; i + 1 < lines.length; i += 1) {
        if (lines[i].includes('|') && isRule(lines[i + 1]) && cells(lines[i]).length === cells(lines[i + 1]).length) {
          if (i > start) blocks.push(lines.slice(start, i).join('\n'));
          let end = i + 2;
          while (end < lines.length && lines[end].includes('|')) end += 1;
          blocks.push({ table: lines.slice(i, end) });
          start = end;
          i = end - 1;
        }
      }
      if (start < lines.length) blocks.push(lines.slice(start).join('\n'));
    }
    return blocks
      .map((para) => {
        if (para.table) return table(para.table);
        const f = para.trim().match(/^\u0001(\d+)\u0001$/);
        if (f) return fenced[Number(f[1])];
        if (!para.trim()) return '';
        const h = para.match(/^(#{1,6})\s+(.*)$/);
        if (h) return `<p class="md-heading"><strong>${inline(h[2])}</strong></p>`;
        if (/^\s*[-*]\s+/.test(para)) {
          const items = para.split(/\n\s*[-*]\s+/).map((x) => x.replace(/^\s*[-*]\s+/, ''));
          return `<ul>${items.map((x) => `<li>${inline(x)}</li>`).join('')}</ul>`;
        }
        return `<p>${inline(para)}</p>`;
      })
      .join('');
  }

  mimeBundle(data, node) {
    // ipywidgets cannot run in a static page: show a note, not their repr.
    if (data['application/vnd.jupyter.widget-view+json']) {
      // The book's notebooks draw a static figure or table right after each
      // widget (what the page shows in its place).
      return '<div class="widget-placeholder">Interactive widget: it runs only in a live Jupyter session (open this notebook in Jupyter to use it); the static output below stands in for it here.</div>';
    }
    const order = ['text/html', 'image/svg+xml', 'text/latex', 'image/png', 'image/jpeg', 'image/gif', 'text/markdown', 'text/plain'];
    for (const mime of order) {
      const item = data[mime];
      if (!item) continue;
      if (mime.startsWith('image/') && mime !== 'image/svg+xml') {
        const alt = this.mimeContent(data['text/plain'], node) ?? 'output image';
        if (item.path) return `<img class="output-image"${attrs({ src: this.asset(item.path), alt })}>`;
        const b64 = this.mimeContent(item, node);
        if (b64) return `<img class="output-image"${attrs({ src: `data:${mime};base64,${b64.replace(/\s/g, '')}`, alt })}>`;
        continue;
      }
      if (mime === 'image/svg+xml') {
        if (item.path && !item.content) return `<img class="output-image"${attrs({ src: this.asset(item.path), alt: 'SVG output' })}>`;
        const svg = this.mimeContent(item, node);
        if (svg) return `<div class="output-svg">${svg}</div>`;
        continue;
      }
      const content = this.mimeContent(item, node);
      if (content === undefined) continue;
      if (mime === 'text/html') return `<div class="output-html">${content}</div>`;
      if (mime === 'text/latex') {
        const html = this.latexOutput(content, node);
        if (html) return `<div class="output-latex">${html}</div>`;
        continue;
      }
      if (mime === 'text/markdown') return `<div class="output-markdown">${this.markdownOutput(content)}</div>`;
      if (mime === 'text/plain') {
        const text = stripAnsi(content);
        return `<pre class="output text">${esc(text)}</pre>`;
      }
    }
    return '';
  }

  // ---- admonitions
  admonition(n, ctx) {
    const kind = n.kind && n.kind !== 'admonition' ? n.kind : 'note';
    const kids = n.children ?? [];
    const titleNode = kids.find((c) => c.type === 'admonitionTitle');
    const title = titleNode ? this.all(titleNode, { ...ctx, tight: true }) : esc(kind.charAt(0).toUpperCase() + kind.slice(1));
    const body = kids.filter((c) => c !== titleNode).map((c) => this.node(c, { ...ctx, parent: n })).join('');
    const classes = String(n.class ?? '').split(/\s+/).filter(Boolean);
    const cls = ['admonition', kind, ...classes].join(' ');
    const id = n.html_id || n.identifier || undefined;
    if (classes.includes('dropdown') || n.open === false) {
      return `<details${attrs({ class: cls, id })}><summary class="admonition-title">${title}</summary><div class="admonition-body">${body}</div></details>`;
    }
    return `<aside${attrs({ class: cls, id })}><p class="admonition-title">${title}</p><div class="admonition-body">${body}</div></aside>`;
  }

  // ---- citations and references
  citeOne(n, ctx) {
    const label = n.label ?? n.identifier;
    const inner = this.all(n, ctx) || esc(label);
    if (n.error || !this.cite.data?.[label]) {
      warn(`${this.where(n)} citation '${label}' is not in the bibliography`);
      return `<span class="cite unresolved">${inner}</span>`;
    }
    const link = `<a class="cite" href="#cite-${esc(slugify(label))}">${inner}</a>`;
    if (ctx.parent?.type !== 'citeGroup' && n.kind === 'parenthetical') return `(${link})`;
    return link;
  }

  citeGroup(n, ctx) {
    const parts = (n.children ?? []).map((c) => this.node(c, { ...ctx, parent: n }));
    if (n.kind === 'parenthetical') return `<span class="cite-group">(${parts.join('; ')})</span>`;
    return `<span class="cite-group">${parts.join(', ')}</span>`;
  }

  bibliography() {
    this.bibliographyRendered = true;
    // A page without citations of its own (e.g. a References chapter) lists
    // every work cited anywhere in the book, alphabetically.
    if (!(this.cite.order ?? []).length) return this.referencesHtml(false, allCitations);
    return this.referencesHtml(false);
  }

  referencesHtml(withHeading, cite = this.cite) {
    const order = cite.order ?? [];
    if (!order.length) return '';
    const items = order
      .map((label) => {
        const d = cite.data[label] ?? {};
        const text = d.html ?? esc(label);
        const link = d.url && !String(d.html ?? '').includes(d.url) ? ` <a class="external" href="${esc(d.url)}">${esc(d.url)}</a>` : '';
        return `<li id="cite-${esc(slugify(label))}">${text}${link}</li>`;
      })
      .join('');
    const heading = withHeading ? '<h2 id="references">References<a class="anchor" href="#references" aria-label="Link to this section">#</a></h2>' : '';
    if (withHeading) this.toc.push({ id: 'references', depth: 2, html: 'References' });
    return `<section class="references">${heading}<ul class="bibliography">${items}</ul></section>`;
  }

  // ---- the page
  render() {
    const fm = this.data.frontmatter ?? {};
    this.titleNumbered = !fm.content_includes_title; // the chapter number goes on the first h1
    const body = this.node(this.data.mdast);
    const refs = this.bibliographyRendered ? '' : this.referencesHtml(true);
    const title = fm.title ?? this.entry.title;
    const chapterNumber = chapterOf.has(this.entry.slug) ? `<span class="chapter-number">${esc(chapterOf.get(this.entry.slug))}</span> ` : '';
    const titleHtml = fm.content_includes_title ? '' : `<h1 class="page-title">${chapterNumber}${esc(title)}</h1>`;
    const subtitle = fm.subtitle ? `<p class="subtitle">${esc(fm.subtitle)}</p>` : '';
    const kindBadge = this.data.kind === 'Notebook' ? '<span class="badge">Notebook</span>' : '';
    return { title, html: `${kindBadge}${titleHtml}${subtitle}${body}${refs}` };
  }

  // Prose of the page for the search index: text and inline math, no code,
  // outputs or display math.
  searchText() {
    const skip = new Set(['code', 'outputs', 'output', 'math', 'comment']);
    const parts = [];
    const walk = (n) => {
      if (!n || n.visibility === 'remove' || skip.has(n.type)) return;
      if (n.type === 'text' || n.type === 'inlineCode' || n.type === 'inlineMath') parts.push(n.value ?? '');
      for (const c of n.children ?? []) walk(c);
      if (['paragraph', 'heading', 'listItem', 'tableCell', 'admonitionTitle'].includes(n.type)) parts.push(' ');
    };
    walk(this.data.mdast);
    return parts.join('').replace(/\s+/g, ' ').trim();
  }
}

// ------------------------------------------------------------------ layout
function sidebar(current, root) {
  const items = nav
    .map((n) => {
      const lvl = Math.min(Math.max(n.level ?? 1, 1), 6);
      if (n.kind === 'part') return `<li class="nav-part level-${lvl}">${esc(n.title)}</li>`;
      const isCur = n.slug === current;
      const number = chapterOf.has(n.slug) ? `<span class="nav-number">${esc(chapterOf.get(n.slug))}</span> ` : '';
      return `<li class="nav-page level-${lvl}${isCur ? ' current' : ''}"><a href="${esc(root + fileOf(n.slug))}"${isCur ? ' aria-current="page"' : ''}>${number}${esc(n.title)}</a></li>`;
    })
    .join('');
  // At phone width the contents collapse behind the "Contents" button (a checkbox and its
  // label: no script needed); on wider screens the button is hidden and the list shown.
  return `<nav class="sidebar" aria-label="Book contents">
<div class="sidebar-top">
<a class="site-title" href="${esc(root)}index.html"${brand !== siteTitle ? ` title="${esc(siteTitle)}"` : ''}>${esc(brand)}</a>
<label class="nav-button" for="nav-toggle">Contents</label>
</div>
<input type="checkbox" id="nav-toggle" class="nav-toggle" aria-label="Show the table of contents">
<form class="search" role="search" data-root="${esc(root)}" hidden onsubmit="return false">
<input type="search" id="search-input" placeholder="Search the book" aria-label="Search the book" autocomplete="off">
<ol id="search-results" class="search-results" aria-live="polite"></ol>
</form>
<ul class="nav-list">${items}</ul>
</nav>`;
}

function pageToc(toc) {
  if (toc.length < 2) return '';
  const items = toc.map((t) => `<li class="toc-h${t.depth}"><a href="#${esc(t.id)}">${t.html.replace(/<a\b[^>]*>|<\/a>/g, '')}</a></li>`).join('');
  return `<nav class="page-toc" aria-label="On this page"><p class="page-toc-title">On this page</p><ul>${items}</ul></nav>`;
}

function prevNext(i, root) {
  const prev = pages[i - 1];
  const next = pages[i + 1];
  const link = (p, dir) =>
    p
      ? `<a class="pn ${dir}" href="${esc(root + fileOf(p.slug))}"><span class="pn-dir">${dir === 'prev' ? '← Previous' : 'Next →'}</span><span class="pn-title">${esc(p.title)}</span></a>`
      : '<span></span>';
  return `<nav class="prev-next" aria-label="Previous and next page">${link(prev, 'prev')}${link(next, 'next')}</nav>`;
}

function layout({ title, html, toc, entry, index, root }) {
  const fullTitle = entry.slug === indexSlug ? title : `${title} — ${siteTitle}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(fullTitle)}</title>
<link rel="stylesheet" href="${root}${STATIC}/katex/katex.min.css">
<link rel="stylesheet" href="${root}${STATIC}/style.css">
<script src="${root}${STATIC}/search-index.js" defer></script>
<script src="${root}${STATIC}/search.js" defer></script>
</head>
<body>
<a class="skip-link" href="#content">Skip to content</a>
<div class="layout">
${sidebar(entry.slug, root)}
<main id="content" class="content">
<article class="page">
${html}
</article>
${prevNext(index, root)}
<footer class="site-footer">${esc(siteTitle)} · built with Jupyter Book 2 (mystmd) and an offline theme</footer>
</main>
${pageToc(toc)}
</div>
</body>
</html>
`;
}

// ------------------------------------------------------------------ main
function copyAssets() {
  fs.mkdirSync(path.join(OUT, STATIC, 'katex'), { recursive: true });
  const katexDist = path.dirname(require.resolve('katex/dist/katex.min.css'));
  fs.copyFileSync(path.join(katexDist, 'katex.min.css'), path.join(OUT, STATIC, 'katex', 'katex.min.css'));
  fs.cpSync(path.join(katexDist, 'fonts'), path.join(OUT, STATIC, 'katex', 'fonts'), { recursive: true });
  fs.copyFileSync(path.join(THEME_DIR, 'style.css'), path.join(OUT, STATIC, 'style.css'));
  fs.copyFileSync(path.join(THEME_DIR, 'search.js'), path.join(OUT, STATIC, 'search.js'));
  if (fs.existsSync(PUBLIC)) fs.cpSync(PUBLIC, path.join(OUT, ASSETS), { recursive: true });
  fs.writeFileSync(path.join(OUT, '.nojekyll'), '');
}

const pageData = new Map(pages.map((p) => [p.slug, p.slug === indexSlug ? indexData : loadPage(p.slug)]));

// Every work cited anywhere in the book, sorted by its formatted entry.
const allCitations = { order: [], data: {} };
for (const data of pageData.values()) {
  for (const [label, entry] of Object.entries(data?.references?.cite?.data ?? {})) {
    if (!allCitations.data[label]) allCitations.data[label] = entry;
  }
}
const sortKey = (label) => String(allCitations.data[label].html ?? label).replace(/<[^>]*>/g, '').toLowerCase();
allCitations.order = Object.keys(allCitations.data).sort((a, b) => sortKey(a).localeCompare(sortKey(b)));

// Unsupported markup fails the build before anything is written.
const unsupported = [...pageData.entries()].flatMap(([slug, data]) => (data ? checkNodeTypes(data, slug) : []));
if (unsupported.length) {
  for (const err of unsupported) console.error(`⛔ render.mjs: ${err.message}`);
  process.exit(1);
}

fs.mkdirSync(OUT, { recursive: true });
copyAssets();
let written = 0;
const searchIndex = [];
for (const [i, entry] of pages.entries()) {
  const data = pageData.get(entry.slug);
  if (!data) continue;
  const r = new PageRenderer(entry, data);
  const { title, html } = r.render();
  searchIndex.push({
    title,
    url: r.file,
    headings: r.toc.map((t) => ({ id: t.id, text: t.html.replace(/<[^>]*>/g, '') })),
    text: r.searchText(),
  });
  const outFile = path.join(OUT, r.file);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, layout({ title, html, toc: r.toc, entry, index: i, root: r.root }));
  written += 1;
  console.log(`render.mjs: wrote ${r.file}`);
}
fs.writeFileSync(path.join(OUT, STATIC, 'search-index.js'), `window.SEARCH_INDEX = ${JSON.stringify(searchIndex)};\n`);
console.log(`render.mjs: ${written} pages written to ${OUT} with ${warnings} warning(s)`);
