#!/usr/bin/env bash
# Make sure a Chromium is available for the browser test of the rendered book
# (tests/test_site.py, which looks for `chromium`, `chromium-browser`, `google-chrome`,
# `google-chrome-stable` or `chrome` on PATH, or $STRDIFF_CHROMIUM).
#
# When none is found and we are root on a Debian/Ubuntu system, install Debian's `chromium`
# package (about 100 MB, a minute or two; `apt-get update` only if the first try fails).
# Otherwise print a note and succeed: the browser test then skips, and says why.
# Set STRDIFF_NO_BROWSER_INSTALL=1 to never install anything.
set -uo pipefail

if [ -n "${STRDIFF_CHROMIUM:-}" ] && command -v "$STRDIFF_CHROMIUM" >/dev/null 2>&1; then exit 0; fi
for name in chromium chromium-browser google-chrome google-chrome-stable chrome; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done

if [ -n "${STRDIFF_NO_BROWSER_INSTALL:-}" ]; then
  echo "ensure_chromium.sh: no Chromium found (STRDIFF_NO_BROWSER_INSTALL is set): the browser test will skip"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium.sh: no Chromium found and cannot install one (needs root and apt-get):"
  echo "  install the Debian package 'chromium' (or set STRDIFF_CHROMIUM) to run the browser test"
  exit 0
fi

echo "ensure_chromium.sh: installing Debian's chromium package for the browser test"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends chromium >/tmp/strdiff-apt-chromium.log 2>&1; }
if ! install; then
  apt-get update -q >>/tmp/strdiff-apt-chromium.log 2>&1 && install
fi
if command -v chromium >/dev/null 2>&1; then
  echo "ensure_chromium.sh: chromium installed in $(( $(date +%s) - start )) s"
else
  echo "ensure_chromium.sh: installing chromium failed (log: /tmp/strdiff-apt-chromium.log); the browser test will skip"
fi
exit 0
