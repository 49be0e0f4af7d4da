"""The book's reference pages stay true to the code: every command shown parses with the CLI,
the image credits are the library's, the licences agree."""
import re
import shlex
from pathlib import Path

import pytest
import yaml

from strdiff_edu.cli import build_parser
from strdiff_edu.data import SOURCES, credits_table

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "book" / "reference"
PAGES_WITH_COMMANDS = ("own_data.md", "troubleshooting.md", "gpu.md")


def _shown_commands(page: Path):
    """``strdiff ...`` command lines inside the page's bash/console code blocks."""
    text = page.read_text(encoding="utf-8")
    for block in re.findall(r"```(?:bash|console)\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            if "-m strdiff_edu.cli " in line:
                line = "strdiff " + line.split("-m strdiff_edu.cli ", 1)[1]
            if line.startswith("strdiff ") and "..." not in line:
                yield line


def test_pages_show_commands():
    for name in PAGES_WITH_COMMANDS:
        assert len(list(_shown_commands(REFERENCE / name))) >= 3, name


@pytest.mark.parametrize("name", PAGES_WITH_COMMANDS)
def test_every_shown_command_parses(name):
    parser = build_parser()
    for line in _shown_commands(REFERENCE / name):
        argv = shlex.split(line)[1:]
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:   # argparse reports the bad option on stderr
            pytest.fail(f"{name}: `{line}` does not parse (exit {exc.code})")
        assert callable(getattr(args, "func", None)), f"{name}: `{line}` names no subcommand"


def test_torchrun_command_names_the_cli_module():
    text = (REFERENCE / "own_data.md").read_text(encoding="utf-8")
    assert re.search(r"torchrun --standalone --nproc_per_node \d+ -m strdiff_edu\.cli train ", text)


def test_credits_page_shows_the_library_credits():
    page = (REFERENCE / "credits.md").read_text(encoding="utf-8")
    assert credits_table().strip() in page, (
        "book/reference/credits.md: paste strdiff_edu.data.credits_table() again")
    for source in SOURCES:
        assert source.name in page and source.credit in page


def test_licences_agree():
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    project = yaml.safe_load((ROOT / "myst.yml").read_text(encoding="utf-8"))["project"]
    assert project["license"]["code"] == "MIT" and "MIT License" in licence
    assert project["license"]["content"] == "CC-BY-4.0" and "CC-BY-4.0" in licence
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^license\s*=\s*\{\s*text\s*=\s*"MIT"\s*\}', pyproject, flags=re.M)
    credits = (REFERENCE / "credits.md").read_text(encoding="utf-8")
    for repo in ("github.com/htyjers/StrDiffusion", "github.com/Algolzw/image-restoration-sde"):
        assert repo in credits


def test_gpu_page_names_its_measurements_and_marks_what_was_not_run():
    text = (REFERENCE / "gpu.md").read_text(encoding="utf-8")
    assert "benchmarks/results/gpu_h100_run1.json" in text and (ROOT / "benchmarks" / "results"
                                                                / "gpu_h100_run1.json").is_file()
    assert "untested on several GPUs" in text and "computed" in text
    assert re.search(r"torchrun --standalone --nproc_per_node \d+ -m strdiff_edu\.cli train ", text)
    assert "scripts/gpu_train.sh" in text and "--resume" in text
