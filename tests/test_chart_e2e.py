"""`make chart-e2e` runs on a real cluster only (docs/deploy.md); without one it must say
so and fail, never pass as if it had checked something."""

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_without_a_cluster_chart_e2e_says_so_and_fails(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: none\n"
        f"clusters: [{{name: none, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: none, user: {token: x}}]\n"
        "contexts: [{name: none, context: {cluster: none, user: none}}]\n"
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chart_e2e.py")],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "No Kubernetes cluster answers" in result.stderr
    assert str(kubeconfig) in result.stderr
    assert "==> install" not in result.stdout
