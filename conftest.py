"""Let nbval run the book's jupytext MyST notebooks (book/**/*.md) directly, without .ipynb copies.

nbval only collects ``*.ipynb``; here a ``.md`` file whose front matter declares a
``kernelspec`` is read with jupytext and handed to nbval's collector.
"""
import jupytext
import nbval.plugin as nbval_plugin


def _is_notebook(path) -> bool:
    if path.suffix != ".md":
        return False
    head = path.read_text(encoding="utf-8")[:1500]
    return head.startswith("---") and "kernelspec:" in head


class JupytextNotebook(nbval_plugin.IPyNbFile):
    def collect(self):
        real_read = nbval_plugin.nbformat.read
        nbval_plugin.nbformat.read = lambda fp, as_version=4: jupytext.read(fp)
        try:
            yield from super().collect()
        finally:
            nbval_plugin.nbformat.read = real_read


def pytest_collect_file(file_path, parent):
    opt = parent.config.option
    if (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)) and _is_notebook(file_path):
        return JupytextNotebook.from_parent(parent, path=file_path)
