"""skaffold.yaml (there is no skaffold binary here): one artifact per service built from
its Dockerfile with the repository root as context, each image handed to the chart, and
the dev profile's port-forwards reaching the Services the chart renders."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import helm_check

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("gateway", "notifier", "prompt", "video")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    return loaded


def profile(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The config with a profile's patches applied (skaffold's JSON-patch `add`s)."""
    patched: dict[str, Any] = yaml.safe_load(yaml.safe_dump(config))
    (found,) = [p for p in config["profiles"] if p["name"] == name]
    for patch in found.get("patches", []):
        assert patch["op"] == "add", patch
        *parents, last = patch["path"].strip("/").split("/")
        target: Any = patched
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = patch["value"]
    for key, value in found.items():
        if key not in ("name", "patches"):
            patched[key] = value
    return patched


def test_one_artifact_per_service_from_the_repository_root(config: dict[str, Any]) -> None:
    assert config["apiVersion"].startswith("skaffold/v4")
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {f"product-videos-{s}" for s in SERVICES}
    for name in SERVICES:
        artifact = artifacts[f"product-videos-{name}"]
        assert artifact["context"] == "."
        dockerfile = artifact["docker"]["dockerfile"]
        assert dockerfile == f"services/{name}/Dockerfile" and (ROOT / dockerfile).is_file()
    # No registry in the file: it comes from --default-repo.
    assert "/" not in "".join(artifacts)


def test_the_helm_release_gets_each_built_image(config: dict[str, Any]) -> None:
    (release,) = config["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    images = release["setValueTemplates"]
    assert images == {
        f"{name}.image": f"{{{{.IMAGE_FULLY_QUALIFIED_product_videos_{name}}}}}"
        for name in SERVICES
    }


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_profiles_use_the_charts_values_files(config: dict[str, Any], name: str) -> None:
    (release,) = profile(config, name)["deploy"]["helm"]["releases"]
    for values in release["valuesFiles"]:
        assert (ROOT / values).is_file(), values


def test_dev_port_forwards_reach_the_gateway_and_the_notifier(
    config: dict[str, Any], helm_binary: None
) -> None:
    dev = profile(config, "dev")
    (release,) = dev["deploy"]["helm"]["releases"]
    objects = helm_check.template(
        values=tuple(Path(v).name for v in release["valuesFiles"]),
        set_values=tuple(f"{k}={v}" for k, v in release.get("setValues", {}).items()),
        release=release["name"],
    )
    services = {
        o["metadata"]["name"]: {p["port"] for p in o["spec"]["ports"]}
        for o in objects
        if o["kind"] == "Service"
    }
    forwards = {(f["resourceName"], f["port"], f["localPort"]) for f in dev["portForward"]}
    assert forwards == {
        ("product-videos-gateway", 8000, 8000),
        ("product-videos-notifier", 8001, 8001),
    }
    for service, port, _ in forwards:
        assert port in services[service], (service, services)
    # The web client, loaded through the forward, opens the notifier's forwarded socket.
    (config_map,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "product-videos"
    ]
    assert config_map["data"]["PUBLIC_WS_URL"] == "ws://localhost:8001/ws"
