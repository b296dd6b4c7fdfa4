"""`make run`'s decisions that a person sees before anything starts (scripts/run.py).
Starting everything for real is tests/test_make_run.py."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_script", ROOT / "scripts" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_process_gets_the_same_absolute_storage_folder(
    run: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORAGE_URL", raising=False)
    assert run.storage_url() == f"file://{ROOT / '.data' / 'objects'}"
    monkeypatch.setenv("STORAGE_URL", "file://elsewhere/objects")
    assert run.storage_url() == f"file://{ROOT / 'elsewhere' / 'objects'}"
    monkeypatch.setenv("STORAGE_URL", "s3://bucket")
    assert run.storage_url() == "s3://bucket"


def test_without_a_broker_it_says_how_to_get_one(
    run: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.setattr(run, "port_open", lambda host, port: False)
    monkeypatch.setattr(run.shutil, "which", lambda name: None)
    with pytest.raises(run.Abort, match="apt-get install rabbitmq-server") as refused:
        run.ensure_rabbitmq()
    assert "AMQP_URL=" in str(refused.value)


def test_a_taken_database_port_is_named(run: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGODB_URL", raising=False)
    monkeypatch.setattr(run, "port_open", lambda host, port: port == run.MONGO_PORT)
    with pytest.raises(run.Abort, match="port 27017 is taken") as refused, run.embedded_mongodb():
        pass
    assert "MONGODB_URL=mongodb://127.0.0.1:27017/" in str(refused.value)


def test_given_urls_are_used_as_they_are(run: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@rabbit:5672/")
    monkeypatch.setenv("MONGODB_URL", "mongodb://mongo:27017/")
    monkeypatch.setattr(run, "port_open", lambda host, port: pytest.fail("nothing to probe"))
    assert run.ensure_rabbitmq() == "amqp://u:p@rabbit:5672/"
    with run.embedded_mongodb() as url:
        assert url == "mongodb://mongo:27017/"


def test_run_base_port_moves_all_four_services(run: ModuleType) -> None:
    moved = run.services_on("9000")
    assert [(s.name, s.port) for s in moved] == [
        ("gateway", 9000),
        ("notifier", 9001),
        ("prompt", 9002),
        ("video", 9003),
    ]
    # The ops ports (/metrics, /readyz with detail) move with them.
    assert [s.env() for s in moved] == [{"OPS_PORT": "9100"}, {"OPS_PORT": "9101"}, {}, {}]
    with pytest.raises(run.Abort, match="RUN_BASE_PORT must be a port number"):
        run.services_on("80")
    with pytest.raises(run.Abort, match="RUN_BASE_PORT must be a port number"):
        run.services_on("eighty")
