"""What the chart's settings mean for an attacker (docs/security.md, "Threats"): whose
X-Forwarded-For the services believe, and that production settings start only when safe."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from common.client_ip import client_ip, parse_networks
from gateway.core.config import GatewaySettings
from scripts.helm_check import template

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("helm_binary")


def config_map(values: tuple[str, ...] = (), set_values: tuple[str, ...] = ()) -> dict[str, str]:
    objects = template(values=values, set_values=set_values)
    (config,) = (
        o
        for o in objects
        if o["kind"] == "ConfigMap" and "data" in o and "STORAGE_URL" in o["data"]
    )
    data: dict[str, str] = config["data"]
    return data


# Peers that are not the ingress controller, yet private: a pod, a VPN user, a load
# balancer that rewrites sources, an IPv6 ULA host.
PRIVATE_PEERS = ("10.1.2.3", "172.16.5.5", "192.168.1.20", "100.64.0.7", "fd00::5")


@pytest.mark.parametrize("peer", PRIVATE_PEERS)
def test_by_default_a_private_last_hop_cannot_set_its_address(peer: str) -> None:
    trusted = parse_networks(config_map().get("TRUSTED_PROXIES", ""))
    assert client_ip(peer, ["203.0.113.9"], trusted) == peer


def test_dev_values_believe_only_the_ingress_controllers_pods() -> None:
    trusted = parse_networks(config_map(("values-dev.yaml",))["TRUSTED_PROXIES"])
    assert client_ip("10.244.0.12", ["203.0.113.9"], trusted) == "203.0.113.9"
    for peer in PRIVATE_PEERS:
        assert client_ip(peer, ["203.0.113.9"], trusted) == peer


def _gateway_settings(
    config: dict[str, str], monkeypatch: pytest.MonkeyPatch, **secrets: Any
) -> GatewaySettings:
    for key, value in {**config, **secrets}.items():
        monkeypatch.setenv(key, value)
    return GatewaySettings()


def test_the_chart_runs_in_production_mode_and_its_prod_values_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prod = config_map(("values-prod.yaml",))
    assert prod["ENVIRONMENT"] == "production"
    settings = _gateway_settings(prod, monkeypatch, SIGNING_KEY="x" * 64)
    assert settings.environment == "production" and settings.smtp_starttls is True


def test_the_default_values_refuse_to_start_the_gateway_without_mail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = config_map()
    assert default["ENVIRONMENT"] == "production"
    with pytest.raises(ValidationError, match="SMTP_HOST is not set"):
        _gateway_settings(default, monkeypatch, SIGNING_KEY="x" * 40)  # as the chart generates
    dev = config_map(("values-dev.yaml",))
    assert _gateway_settings(dev, monkeypatch, SIGNING_KEY="x" * 40).environment == "development"


def test_the_spending_cap_reaches_the_worker_and_has_an_alert() -> None:
    assert config_map(("values-prod.yaml",))["SPEND_LIMIT_USD_PER_DAY"] == "100"
    objects = template(set_values=("prometheusRule.enabled=true",))
    (rule,) = (o for o in objects if o["kind"] == "PrometheusRule")
    alerts = {a["alert"]: a for g in rule["spec"]["groups"] for a in g["rules"]}
    assert 'limit="usd_per_day"' in alerts["ProductVideosSpendLimitReached"]["expr"]
    assert "pv_spend_limit_usd_per_day" in alerts["ProductVideosSpendHigh"]["expr"]


def test_the_ingress_never_routes_to_the_ops_port() -> None:
    """/metrics (spend figures) and /readyz with backend errors stay off the public path."""
    objects = template(set_values=("ingress.enabled=true", "serviceMonitor.enabled=true"))
    (ingress,) = (o for o in objects if o["kind"] == "Ingress")
    backends = [
        path["backend"]["service"]["port"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends and all(port == {"name": "http"} for port in backends)
    monitors = {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o
        for o in objects
        if o["kind"] == "ServiceMonitor"
    }
    for name in ("gateway", "notifier"):
        assert [e["port"] for e in monitors[name]["spec"]["endpoints"]] == ["ops"]
