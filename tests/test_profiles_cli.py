"""Profiles (STRDIFF_PROFILE / --preset) and the strdiff command line."""
import subprocess
import sys

import pytest

from strdiff_edu import get_profile, profile_name
from strdiff_edu.cli import main


def test_env_var_picks_the_profile_and_argument_wins(monkeypatch):
    monkeypatch.setenv("STRDIFF_PROFILE", "tiny")
    assert get_profile().name == "tiny" and get_profile().image_size == 32
    assert get_profile("paper").name == "paper" and get_profile("paper").sde.T == 400
    monkeypatch.delenv("STRDIFF_PROFILE")
    assert profile_name() == "cpu"


def test_unknown_profile_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("STRDIFF_PROFILE", "huge")
    with pytest.raises(ValueError, match="tiny, cpu, gpu, paper"):
        get_profile()


def test_overrides_reach_nested_sde_fields():
    prof = get_profile("tiny", T=400, image_size=16)
    assert prof.sde.T == 400 and prof.image_size == 16 and prof.sde.schedule == "cosine"
    assert get_profile("tiny").sde.T == 100  # presets are not mutated
    with pytest.raises(ValueError, match="unknown setting"):
        get_profile("tiny", widht=3)


def test_cli_schedule_respects_preset_and_overrides(capsys, monkeypatch):
    monkeypatch.setenv("STRDIFF_PROFILE", "tiny")
    assert main(["schedule", "--preset", "paper"]) == 0
    assert "T=400" in capsys.readouterr().out
    assert main(["schedule", "--T", "50", "--eps", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "T=50" in out and "eps=0.01" in out


def test_cli_reports_bad_settings_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "strdiff_edu.cli", "schedule", "--schedule", "cosin"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown schedule 'cosin'" in proc.stderr and "Traceback" not in proc.stderr
