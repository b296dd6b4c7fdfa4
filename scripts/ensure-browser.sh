#!/usr/bin/env bash
# Makes sure the browser tests (tests/test_web_client.py) have a Chromium: one already on
# PATH or in CHROMIUM; else Debian's `chromium` package when we may use apt-get (root, as in
# CI); else Playwright's own build (`playwright install chromium`, from Playwright's CDN).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV="${UV:-uv}"

if [[ -n "${CHROMIUM:-}" ]] || command -v chromium chromium-browser google-chrome \
    google-chrome-stable >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium for the web client tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  exit 0
fi
echo "browser: no Chromium found; fetching Playwright's (or install your distribution's chromium)"
cd "$ROOT" && "$UV" run --no-sync playwright install chromium
