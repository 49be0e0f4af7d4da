// Client-side search for the offline book: page titles, section headings and
// prose, from window.SEARCH_INDEX (written by render.mjs to search-index.js).
// Every word of the query must occur in a page; pages rank by where the words
// occur (title > heading > text) and a heading that matches is linked directly.
(function () {
  'use strict';
  const index = window.SEARCH_INDEX;
  const form = document.querySelector('form.search');
  if (!form || !Array.isArray(index)) return;
  const input = form.querySelector('#search-input');
  const list = form.querySelector('#search-results');
  const root = form.getAttribute('data-root') || '';
  form.hidden = false;

  const norm = (s) => String(s).toLowerCase();
  const pages = index.map((p) => ({
    ...p,
    titleN: norm(p.title),
    textN: norm(p.text),
    headingsN: p.headings.map((h) => ({ ...h, textN: norm(h.text) })),
  }));

  function snippet(page, word) {
    const at = page.textN.indexOf(word);
    if (at < 0) return '';
    const start = Math.max(0, at - 60);
    return (start > 0 ? '…' : '') + page.text.slice(start, at + word.length + 80) + '…';
  }

  function search(query) {
    const words = norm(query).split(/\s+/).filter((w) => w.length > 1);
    if (!words.length) return [];
    const hits = [];
    for (const page of pages) {
      let score = 0;
      let heading = null;
      let all = true;
      for (const w of words) {
        const inTitle = page.titleN.includes(w);
        const h = page.headingsN.find((x) => x.textN.includes(w));
        const inText = page.textN.includes(w);
        if (!inTitle && !h && !inText) { all = false; break; }
        score += (inTitle ? 10 : 0) + (h ? 5 : 0) + (inText ? 1 + Math.min(page.textN.split(w).length - 1, 20) / 20 : 0);
        if (h && !heading) heading = h;
      }
      if (all) hits.push({ page, score, heading, snip: snippet(page, words[0]) });
    }
    return hits.sort((a, b) => b.score - a.score).slice(0, 12);
  }

  function show() {
    const hits = search(input.value);
    list.textContent = '';
    if (!input.value.trim()) return;
    if (!hits.length) {
      const li = document.createElement('li');
      li.className = 'search-none';
      li.textContent = 'No page contains all these words.';
      list.appendChild(li);
      return;
    }
    for (const hit of hits) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = root + hit.page.url + (hit.heading ? '#' + hit.heading.id : '');
      a.textContent = hit.page.title + (hit.heading ? ' › ' + hit.heading.text : '');
      li.appendChild(a);
      if (hit.snip) {
        const p = document.createElement('p');
        p.className = 'search-snippet';
        p.textContent = hit.snip;
        li.appendChild(p);
      }
      list.appendChild(li);
    }
  }

  input.addEventListener('input', show);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { input.value = ''; show(); }
  });
})();
