#!/usr/bin/env bash
# Makes sure the monitoring tests have Prometheus: promtool (its rule engine, for
# tests/test_alert_rules.py) and the server (tests/test_dashboard_metrics.py starts its own):
# already on PATH, else Debian's `prometheus` package when we may use apt-get (root, as in
# CI; the package's daemon is not used). Elsewhere those tests are skipped, saying why.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "prometheus: installing Debian's prometheus package for the monitoring tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  exit 0
fi
echo "prometheus: not found and apt-get not usable here: the alert and real-Prometheus" \
  "tests will be skipped (install your distribution's prometheus package)"
