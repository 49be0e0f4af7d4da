"""The errors the ``strdiff`` command reports as one line, and how it tells them from bugs.

* :class:`UsageError` — a bad flag, input file, output path or environment: the user can fix
  it. The command prints ``strdiff: error: <problem>; <fix>`` and exits 2. It is a
  ``ValueError``, so library callers that catch ``ValueError`` keep working.
* :class:`RunFailed` — the run itself went wrong in a way the user can act on (a diverging
  loss, non-finite output): one line, exit 1.
* :class:`CheckpointError` — a weights file or folder that cannot be used (missing, corrupt,
  unsafe, or trained for another configuration): a user error, exit 2.
* :class:`Interrupted` — Ctrl-C or SIGTERM after the command saved what it could: one line
  saying what was kept, exit 130 (Ctrl-C) or 143 (SIGTERM).

Anything else is an *internal error* (a bug): the command says so in one line and how to see
the traceback (``--debug``). :func:`describe` is the one place that decides which is which; an
exception counts as a user error only if it is one of the classes above, an ``OSError`` about a
named file, or a ``ValueError`` / ``RuntimeError`` / ``ImportError`` raised *explicitly* by a
``raise`` statement in this package (its deliberate checks of settings and inputs). The same
types raised inside torch, NumPy or Pillow — or by a failed assertion — are reported as bugs.
"""
from __future__ import annotations

import errno
import traceback
from pathlib import Path
from typing import Tuple

PACKAGE_DIR = Path(__file__).resolve().parent
EXIT_USAGE, EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 1, 130, 143


class StrdiffError(Exception):
    """Base of the errors reported as one line (``exit_code`` says how the command exits)."""

    exit_code = EXIT_USAGE


class UsageError(StrdiffError, ValueError):
    """A bad flag, input, output path or environment: ``<problem>; <fix>``, exit 2."""


class RunFailed(StrdiffError, RuntimeError):
    """A run that failed for a reason the user can act on (diverged, non-finite output): exit 1."""

    exit_code = EXIT_FAILED


class TrainingDiverged(RunFailed, FloatingPointError):
    """The training loss became NaN or infinite."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, unsafe, or made for another configuration
    (raised by :mod:`strdiff_edu.checkpoint` and :mod:`strdiff_edu.weights`; a user error)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, ``exit_code`` 143) after saving; the message says what was kept."""

    def __init__(self, message: str, exit_code: int = EXIT_INTERRUPTED):
        super().__init__(message)
        self.exit_code = exit_code


def _raised_here(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by an explicit ``raise X(...)`` in this package."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    last = frames[-1]
    try:
        inside = Path(last.filename).resolve().is_relative_to(PACKAGE_DIR)
    except (OSError, ValueError):
        inside = False
    line = (last.line or "").strip()
    return inside and line.startswith("raise ") and line != "raise"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def describe(exc: BaseException) -> Tuple[int, str]:
    """``(exit code, the one line to print)`` for an exception that reached the command line."""
    if isinstance(exc, Interrupted):
        return exc.exit_code, f"strdiff: {_one_line(exc)}"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "strdiff: interrupted"
    if isinstance(exc, StrdiffError):
        return exc.exit_code, f"strdiff: error: {_one_line(exc)}"
    if isinstance(exc, CheckpointError):
        return EXIT_USAGE, f"strdiff: error: {_one_line(exc)}"
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return EXIT_FAILED, ("strdiff: error: out of memory; use a smaller image or --batch-size, or leave "
                             "--full-resolution off")
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        fix = "free some disk space" if exc.errno == errno.ENOSPC else "check the path and its permissions"
        return EXIT_USAGE, f"strdiff: error: {exc.strerror}{where}; {fix}"
    if isinstance(exc, ModuleNotFoundError) and exc.name and not exc.name.startswith("strdiff_edu"):
        return EXIT_USAGE, (f"strdiff: error: the package {exc.name!r} is not installed; "
                            "install strdiff_edu's dependencies (pip install -e .)")
    deliberate = (ValueError, RuntimeError, ImportError, FileNotFoundError)
    if (isinstance(exc, deliberate) and not isinstance(exc, (NotImplementedError, RecursionError))
            and _raised_here(exc)):
        return EXIT_USAGE, f"strdiff: error: {_one_line(exc)}"
    return EXIT_INTERNAL, (f"strdiff: internal error (a bug in strdiff_edu, please report it): "
                           f"{type(exc).__name__}: {_one_line(exc)}; rerun with --debug to see the traceback")
