"""What each image holds, checked without a Docker engine: the files its Dockerfile copies
(less what .dockerignore leaves out) are installed the way its build stage installs them
(`uv sync --locked --no-dev --package <service> --no-editable`), and the image's own
command then starts the service from that virtualenv alone, outside the repository, until
`/readyz` answers 200 against the real broker and database.

This catches what the other tests cannot: a runtime import of a development-only package,
a file the image does not copy, a lock file out of step with a pyproject."""

import fnmatch
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.backends import free_port
from tests.support.processes import SPECS

ROOT = Path(__file__).resolve().parent.parent
SERVICES = tuple(SPECS)


def build_stage(dockerfile: str) -> list[str]:
    """The instructions of the build stage (up to the second FROM)."""
    stages = dockerfile.split("\nFROM ")[1:]
    return [line.strip() for line in stages[1].splitlines()]


def ignored(relative: Path, patterns: list[str]) -> bool:
    path = relative.as_posix()
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(path, pattern) or any(
            fnmatch.fnmatch(part, bare) for part in relative.parts
        ):
            return True
    return False


def context_copy(stage: list[str], into: Path) -> None:
    """Do the build stage's `COPY <src>... <dst>` lines from the repository into `into`."""
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith(("#", "!"))
    ]
    for line in stage:
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        *sources, target = line.split()[1:]
        for source in sources:
            src = ROOT / source
            dst = into / target / src.name if target.endswith("/") else into / target
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                continue
            for path in src.rglob("*"):
                relative = path.relative_to(ROOT)
                if path.is_file() and not ignored(relative, patterns):
                    out = dst / path.relative_to(src)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".venv-tools" / "bin" / "uv")
    assert Path(found).exists(), "uv is needed (make install puts it on PATH or in .venv-tools)"
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_install_runs_the_service_on_its_own(
    service: str, service_env: dict[str, str], tmp_path: Path
) -> None:
    dockerfile = (ROOT / "services" / service / "Dockerfile").read_text()
    stage = build_stage(dockerfile)
    context = tmp_path / "src"
    context_copy(stage, context)
    assert not list(context.rglob("tests")), "tests must stay out of the image"

    venv = tmp_path / "venv"
    sync = [line for line in stage if "uv sync" in line][-1]
    args = sync.split("uv sync", 1)[1].split()
    assert args == ["--locked", "--no-dev", "--package", service, "--no-editable"], sync
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    subprocess.run(
        [uv(), "sync", *args],
        cwd=context,
        env={**env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"},
        check=True,
        capture_output=True,
        timeout=300,
    )

    # Installed as regular packages: the runtime stage copies the venv and nothing else.
    for package in (service, "common"):
        assert list(venv.glob(f"lib/python3.*/site-packages/{package}/main.py")) or list(
            venv.glob(f"lib/python3.*/site-packages/{package}/__init__.py")
        ), f"{package} is not inside the venv"

    command = json.loads(dockerfile.rsplit("CMD ", 1)[1])
    port, ops_port = free_port(), free_port()
    run_env = {
        **env,
        **service_env,
        "PATH": f"{venv / 'bin'}:{env['PATH']}",
        "HOME": str(tmp_path),
        "UVICORN_HOST": "127.0.0.1",
        "UVICORN_PORT": str(port),
        "OPS_PORT": str(ops_port),  # the gateway's and notifier's /metrics; workers ignore it
    }
    if service not in ("gateway", "notifier"):
        ops_port = port
    workdir = tmp_path / "app"  # not the repository: nothing importable by accident
    workdir.mkdir()
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=run_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"{service} exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{ops_port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{service} not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        imported = httpx.get(f"http://127.0.0.1:{ops_port}/metrics", timeout=5)
        assert imported.status_code == 200
    finally:
        process.terminate()
        process.wait(30)
    assert str(ROOT) not in log.read_text(), "the service ran code from the repository"
