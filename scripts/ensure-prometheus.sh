#!/usr/bin/env bash
# Makes sure tests/test_alert_rules.py has promtool (Prometheus's rule engine): one already
# on PATH, else Debian's `prometheus` package when we may use apt-get (root, as in CI; its
# daemon is not needed and not started). Elsewhere the alert tests are skipped, saying why.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "prometheus: installing Debian's prometheus package (promtool) for the alert tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  exit 0
fi
echo "prometheus: promtool not found and apt-get not usable here:" \
  "tests/test_alert_rules.py will be skipped (install your distribution's prometheus package)"
