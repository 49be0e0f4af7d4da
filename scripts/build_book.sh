#!/usr/bin/env bash
# Build the strdiff_edu book offline with Jupyter Book 2 (mystmd) and the
# project's own static-HTML renderer in _theme/ (the official book-theme is
# downloaded at build time and cannot be used offline).
#
# Usage: scripts/build_book.sh [--execute|--check|--render]
#
#   --execute  (default, used by `make book`) run every notebook page on a
#              Jupyter server owned by this script, render _build/html/ and
#              fail on any error or warning. Log: _build/book.log
#   --check    (used by the test suite; fast, no notebook execution) parse
#              and resolve the book with `jupyter-book build --site --strict`,
#              then run the HTML renderer on the result in a scratch folder
#              (skipped if _theme/node_modules is missing); fail on any error
#              or warning. _build/html is left alone (set BOOK_CHECK_HTML=DIR
#              to keep the rendered pages in DIR; tests/test_site.py does).
#              Log: _build/book-check.log
#   --render   (for work on the theme) re-render _build/html from the site
#              content of the last build (_build/site) with _theme/render.mjs,
#              in seconds; nothing is executed or parsed again.
#
# Environment:
#   STRDIFF_PROFILE  passed to the notebook kernels (default here: tiny)
#   VENV             virtual environment to use (default: <repo>/.venv)
#   BOOK_EXECUTE_CACHE=1  (--execute) keep mystmd's execution cache, so that only the
#                    notebooks changed since the last build run again (for work on a few
#                    chapters; the cache ignores STRDIFF_PROFILE, so keep it the same)
#
# Why a private Jupyter server: mystmd spawns `python -m jupyter_server`
# itself, which (a) refuses to run as root unless allow_root is configured,
# in which case the build silently produces pages without outputs, and
# (b) is left running after the build. We start our own server with
# allow_root, hand it to mystmd via JUPYTER_BASE_URL/JUPYTER_TOKEN, and stop
# it (and any kernel it started) when this script exits.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

MODE=execute
case "${1:-}" in
  ""|--execute) MODE=execute ;;
  --check) MODE=check ;;
  --render) MODE=render ;;
  -h|--help) usage; exit 0 ;;
  *) echo "build_book.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
esac
[ "$#" -le 1 ] || { echo "build_book.sh: expected at most one argument" >&2; exit 2; }

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
if [ -x "$VENV/bin/python" ]; then
  # mystmd runs `which python` for the kernel server, so the venv goes first.
  export PATH="$VENV/bin:$PATH"
fi
for tool in python jupyter-book node; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "build_book.sh: '$tool' not found on PATH (run 'make setup' first)" >&2; exit 1; }
done

mkdir -p _build

# The API reference page is generated from the library's docstrings (and not committed).
python scripts/api_reference.py >/dev/null

# Fail when mystmd (or the renderer) logged an error or a warning. mystmd's
# exit code misses several of them (unknown directives, unresolved
# references), so the log is the source of truth.
check_log() {
  local log="$1"
  if grep -nE '⛔|⚠|Could not load Jupyter|Jupyter server did not start' "$log" >&2; then
    echo "build_book.sh: FAILED: the errors/warnings above were logged (full log: $log)" >&2
    return 1
  fi
}

if [ "$MODE" = render ]; then
  [ -f _build/site/config.json ] || {
    echo "build_book.sh: no _build/site/config.json: build the book first (make book)" >&2; exit 1; }
  LOG=_build/book-render.log
  set +e
  BUILD_DIRECTORY="$ROOT/_build/html" RENDER_SITE_DIR="$ROOT/_build/site" node _theme/render.mjs 2>&1 | tee "$LOG"
  rc=${PIPESTATUS[0]}
  set -e
  check_log "$LOG" || exit 1
  [ "$rc" -eq 0 ] || exit "$rc"
  echo "build_book.sh: re-rendered $ROOT/_build/html/index.html"
  exit 0
fi

if [ "$MODE" = check ]; then
  LOG=_build/book-check.log
  set +e
  jupyter-book build --site --strict 2>&1 | tee "$LOG"
  rc=${PIPESTATUS[0]}
  # Also run the HTML renderer on the (unexecuted) content, into a scratch
  # folder, so unsupported markup and KaTeX errors are caught; its warnings
  # go to stderr, which is appended to the log.
  if [ "$rc" -eq 0 ] && [ -f _theme/node_modules/katex/package.json ]; then
    scratch="$(mktemp -d "${TMPDIR:-/tmp}/strdiff-book-check.XXXXXX")"
    html_dir="${BOOK_CHECK_HTML:-$scratch/html}"
    BUILD_DIRECTORY="$html_dir" RENDER_SITE_DIR="$ROOT/_build/site" \
      node _theme/render.mjs 2>&1 >/dev/null | tee -a "$LOG"
    render_rc=${PIPESTATUS[0]}
    rm -rf -- "$scratch"
    [ "$render_rc" -eq 0 ] || rc=$render_rc
  elif [ "$rc" -eq 0 ]; then
    echo "build_book.sh: note: _theme/node_modules is missing, so the HTML renderer was not checked"
  fi
  set -e
  check_log "$LOG" || exit 1
  if [ "$rc" -ne 0 ]; then
    echo "build_book.sh: FAILED: jupyter-book exited with status $rc (log: $LOG)" >&2
    exit "$rc"
  fi
  echo "build_book.sh: book check passed (no errors or warnings)"
  exit 0
fi

# ---------------------------------------------------------------- --execute
LOG=_build/book.log
export STRDIFF_PROFILE="${STRDIFF_PROFILE:-tiny}"

# Renderer dependencies (node_modules is not committed).
if [ ! -f _theme/node_modules/.package-lock.json ] ||
   [ _theme/package-lock.json -nt _theme/node_modules/.package-lock.json ]; then
  echo "build_book.sh: installing renderer dependencies (npm ci in _theme/)"
  (cd _theme && npm ci --no-audit --no-fund --loglevel=error)
fi

# Jupyter configuration: allow_root (CI containers run as root), and a private
# runtime directory so that this build's kernels can be identified exactly.
export JUPYTER_CONFIG_PATH="$ROOT/.jupyter${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
RUNTIME_DIR="$(mktemp -d "${TMPDIR:-/tmp}/strdiff-book-jupyter.XXXXXX")"
export JUPYTER_RUNTIME_DIR="$RUNTIME_DIR"

TOKEN="$(python -c 'import secrets; print(secrets.token_hex(24))')"
PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SERVER_LOG=_build/jupyter_server.log
SERVER_PID=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    # SIGTERM makes jupyter_server shut its kernels down before exiting.
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  [ -z "$SERVER_PID" ] || wait "$SERVER_PID" 2>/dev/null || true
  # Any kernel still alive was started by this server: its command line names
  # a connection file in our private runtime directory.
  local pids
  pids="$(pgrep -f -- "$RUNTIME_DIR/" 2>/dev/null || true)"
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
  rm -rf -- "$RUNTIME_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "build_book.sh: starting a Jupyter server on 127.0.0.1:$PORT (STRDIFF_PROFILE=$STRDIFF_PROFILE)"
# The token goes through the environment, not the command line (ps shows that).
JUPYTER_TOKEN="$TOKEN" python -m jupyter_server \
  --ServerApp.root_dir="$ROOT" \
  --ServerApp.ip=127.0.0.1 \
  --ServerApp.port="$PORT" \
  --ServerApp.port_retries=0 \
  --ServerApp.open_browser=False \
  --ServerApp.allow_root=True \
  </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ready=0
for _ in $(seq 1 240); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "build_book.sh: the Jupyter server exited during start-up; its log ($SERVER_LOG):" >&2
    cat "$SERVER_LOG" >&2
    exit 1
  fi
  if python - "$PORT" "$TOKEN" <<'PY' 2>/dev/null; then ready=1; break; fi
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/status",
                             headers={"Authorization": f"token {sys.argv[2]}"})
urllib.request.urlopen(req, timeout=2).read()
PY
  sleep 0.25
done
if [ "$ready" -ne 1 ]; then
  echo "build_book.sh: the Jupyter server did not answer within 60 s; its log ($SERVER_LOG):" >&2
  cat "$SERVER_LOG" >&2
  exit 1
fi

# The execution cache ignores environment variables (STRDIFF_PROFILE), so
# execute from scratch unless asked to keep it.
if [ -z "${BOOK_EXECUTE_CACHE:-}" ]; then
  jupyter-book clean --execute --html -y >/dev/null
fi

set +e
JUPYTER_BASE_URL="http://127.0.0.1:$PORT" JUPYTER_TOKEN="$TOKEN" \
  jupyter-book build --html --execute --strict 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e

check_log "$LOG" || exit 1
if [ "$rc" -ne 0 ]; then
  echo "build_book.sh: FAILED: jupyter-book exited with status $rc (log: $LOG)" >&2
  exit "$rc"
fi
if [ ! -f _build/html/index.html ]; then
  echo "build_book.sh: FAILED: _build/html/index.html was not written (log: $LOG)" >&2
  exit 1
fi
echo "build_book.sh: book built: $ROOT/_build/html/index.html"
