"""The SSRF guard: which addresses are public, which URLs are refused on their face, and
the check at connect time (a name that resolves to a private address, DNS rebinding),
no redirects, size and time limits; OUTBOUND_ALLOW_PRIVATE refused in production."""

import asyncio
import ipaddress
import logging
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common.outbound import (
    OutboundClient,
    OutboundError,
    OutboundRefused,
    is_public,
    resolve,
    validate_url,
)
from common.settings import CommonSettings
from tests.support.receiver import Answer, Receiver

NOT_PUBLIC_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",  # shared address space (carrier NAT; Alibaba's metadata service)
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local, the cloud metadata service
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",
]
NOT_PUBLIC_V6 = ["::1/128", "::/128", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8"]


def addresses_in(networks: list[str]) -> st.SearchStrategy[ipaddress.IPv4Address]:
    def pick(network: str) -> st.SearchStrategy:
        net = ipaddress.ip_network(network)
        first = int(net.network_address)
        return st.integers(first, first + net.num_addresses - 1).map(ipaddress.ip_address)

    return st.one_of(*(pick(n) for n in networks))


any_ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
any_ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@settings(max_examples=300)
@given(addresses_in(NOT_PUBLIC_V4 + NOT_PUBLIC_V6))
def test_no_address_of_a_private_or_special_range_is_public(ip):
    assert not is_public(ip)


@settings(max_examples=300)
@given(any_ipv4)
def test_an_ipv4_address_wrapped_in_ipv6_is_judged_as_itself(v4):
    mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(v4))
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | 1)
    assert is_public(mapped) == is_public(nat64) == is_public(sixtofour) == is_public(v4)


@settings(max_examples=300)
@given(st.one_of(any_ipv4, any_ipv6))
def test_a_public_address_is_in_no_special_range(ip):
    if is_public(ip):
        assert not (
            ip.is_loopback
            or ip.is_private
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_unspecified
            or ip.is_reserved
        )
        assert ip not in ipaddress.ip_network("100.64.0.0/10" if ip.version == 4 else "fc00::/7")


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]
)
def test_internet_addresses_are_public(address):
    assert is_public(address)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "insecure_url"),
        ("ftp://example.com/hook", "insecure_url"),
        ("file:///etc/passwd", "insecure_url"),
        ("https://127.0.0.1/hook", "private_address"),
        ("https://10.1.2.3/hook", "private_address"),
        ("https://169.254.169.254/latest/meta-data/", "private_address"),
        ("https://[::1]/hook", "private_address"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "private_address"),
        ("https://[::ffff:169.254.169.254]/", "private_address"),
        ("https://[::ffff:7f00:1]/", "private_address"),
        ("https://[fe80::1]/", "private_address"),
        ("https://user:pass@example.com/hook", "invalid_url"),
        ("https:///hook", "invalid_url"),
        ("not a url", "insecure_url"),
    ],
)
def test_urls_refused_on_their_face(url, code):
    with pytest.raises(OutboundRefused) as refused:
        validate_url(url)
    assert refused.value.code == code


def test_public_https_urls_pass_and_allow_private_opens_http_and_loopback():
    assert str(validate_url("https://shop.example.com:8443/hooks?x=1")).startswith("https://")
    assert validate_url("http://127.0.0.1:9/hook", allow_private=True).host == "127.0.0.1"


async def test_a_name_that_resolves_to_loopback_is_refused_at_connect_time():
    async with Receiver() as receiver:
        client = OutboundClient()
        try:
            # `localhost` passes the URL check (it is a name), not the connect.
            with pytest.raises(OutboundRefused) as refused:
                await client.request("POST", f"https://localhost:{receiver.port}/", content=b"{}")
            assert refused.value.code == "private_address"
            with pytest.raises(OutboundRefused):
                await client.request("GET", f"http://localhost:{receiver.port}/")
        finally:
            await client.aclose()
        assert receiver.received == []


async def test_dns_rebinding_is_caught_where_the_connection_is_made(monkeypatch):
    """The name looked public when it was checked and points at loopback when the
    connection is made: the connect's own resolution decides."""
    loop = asyncio.get_running_loop()
    answers = iter(["93.184.215.14", "127.0.0.1"])

    async def rebinding_dns(host, port, **_):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding_dns)
    assert await resolve("rebind.example", 443) == [ipaddress.ip_address("93.184.215.14")]
    client = OutboundClient()
    try:
        with pytest.raises(OutboundRefused) as refused:
            await client.request("GET", "https://rebind.example/hook")
        assert "127.0.0.1" in refused.value.message
    finally:
        await client.aclose()


async def test_one_private_address_among_public_ones_is_refused(monkeypatch):
    loop = asyncio.get_running_loop()

    async def mixed(host, port, **_):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", mixed)
    with pytest.raises(OutboundRefused):
        await resolve("mixed.example", 443)


async def test_redirects_are_not_followed_and_limits_hold():
    def respond(request):
        return {
            "/redirect": Answer(302, b"", {"Location": "http://169.254.169.254/"}),
            "/big": Answer(200, b"x" * 5000),
            "/hang": Answer(200, b"late", delay=30),
        }.get(request.path, Answer(200, b"hello"))

    async with Receiver(respond) as receiver:
        client = OutboundClient(allow_private=True, timeout=1.0, max_bytes=1000)
        try:
            ok = await client.request("POST", f"{receiver.url}/hook", content=b'{"a":1}')
            assert (ok.status_code, ok.content) == (200, b"hello")
            assert receiver.received[0].body == b'{"a":1}'

            redirect = await client.request("GET", f"{receiver.url}/redirect")
            assert redirect.status_code == 302
            assert [r.path for r in receiver.received] == ["/hook", "/redirect"]

            with pytest.raises(OutboundRefused) as refused:
                await client.request("GET", f"{receiver.url}/big")
            assert refused.value.code == "too_large"
            cut = await client.request("GET", f"{receiver.url}/big", truncate=True)
            assert cut.truncated and len(cut.content) == 1000

            with pytest.raises(OutboundError) as hung:
                await client.request("GET", f"{receiver.url}/hang")
            assert hung.value.code == "timeout"
        finally:
            await client.aclose()


async def test_the_log_shows_only_the_origin_of_a_users_url(caplog):
    async with Receiver() as receiver:
        client = OutboundClient(allow_private=True)
        try:
            with caplog.at_level(logging.INFO, logger="httpx"):
                await client.request("POST", f"{receiver.url}/hooks/s3cret?token=abc", content=b"")
        finally:
            await client.aclose()
    assert receiver.received[0].path == "/hooks/s3cret?token=abc"
    assert f"127.0.0.1:{receiver.port}" in caplog.text
    assert "s3cret" not in caplog.text and "token=abc" not in caplog.text


async def test_followed_redirects_are_checked_at_every_hop():
    def respond(request):
        if request.path == "/redirect":
            return Answer(302, b"", {"Location": "file:///etc/passwd"})
        return Answer()

    async with Receiver(respond) as receiver:
        client = OutboundClient(allow_private=True)
        try:
            with pytest.raises(OutboundRefused) as refused:
                await client.request("GET", f"{receiver.url}/redirect", max_redirects=2)
            assert refused.value.code == "insecure_url"
        finally:
            await client.aclose()
    assert [r.path for r in receiver.received] == ["/redirect"]


def test_production_refuses_outbound_allow_private(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SIGNING_KEY", "a-production-signing-key-of-40-characters")
    monkeypatch.setenv("OUTBOUND_ALLOW_PRIVATE", "true")
    with pytest.raises(ValidationError, match="OUTBOUND_ALLOW_PRIVATE"):
        CommonSettings()
    monkeypatch.setenv("OUTBOUND_ALLOW_PRIVATE", "false")
    assert CommonSettings().outbound_allow_private is False
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("OUTBOUND_ALLOW_PRIVATE", "true")
    assert CommonSettings().outbound_allow_private is True
