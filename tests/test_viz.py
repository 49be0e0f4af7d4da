"""The book's display helpers: Markdown tables and library source listings."""
import pytest

import strdiff_edu as sd
from strdiff_edu.viz import markdown_table, show_source


def test_markdown_table_is_a_pipe_table_with_escaped_cells():
    t = markdown_table(["method", "PSNR"], [["a|b", 1.5]])
    assert t._repr_markdown_().splitlines() == ["| method | PSNR |", "|:---|---:|", "| a\\|b | 1.5 |"]
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [[1]])


def test_show_source_names_the_file_and_lines_and_cuts_an_excerpt():
    full = show_source(sd.MeanRevertingSDE.reverse_step)
    assert full.code.startswith("def reverse_step(") and "strdiff_edu/sde.py, lines " in full.where
    assert full._repr_markdown_().startswith('```python title="strdiff_edu/sde.py')
    part = show_source(sd.MeanRevertingSDE.reverse_step, start="score = self.", stop="mean = x_t")
    assert part.code.splitlines()[0].startswith("score = ") and part.code.splitlines()[-1].startswith("mean = ")
    with pytest.raises(ValueError):
        show_source(sd.MeanRevertingSDE.reverse_step, start="no such line")
