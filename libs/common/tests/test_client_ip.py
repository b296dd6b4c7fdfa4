"""Which address is the client's, for every shape of X-Forwarded-For."""

from ipaddress import ip_network

import pytest

from common.client_ip import client_ip, network_of

TRUSTED = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", ["1.2.3.4"], "203.0.113.5"),  # untrusted peer: header ignored
        ("10.0.0.2", [], "10.0.0.2"),  # our proxy, no header: the proxy itself
        ("10.0.0.2", ["203.0.113.5"], "203.0.113.5"),
        ("10.0.0.2", ["6.6.6.6, 203.0.113.5"], "203.0.113.5"),  # spoofed left part ignored
        ("10.0.0.2", ["6.6.6.6", "203.0.113.5, 10.0.0.9"], "203.0.113.5"),  # two headers
        ("10.0.0.2", ["10.0.0.8, 10.0.0.9"], "10.0.0.8"),  # only our proxies
        ("10.0.0.2", ["garbage, 203.0.113.5"], "203.0.113.5"),
        ("10.0.0.2", ["203.0.113.5, garbage"], "10.0.0.2"),  # a broken chain stops there
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        # An IPv4 proxy seen through a dual-stack socket is still the IPv4 proxy.
        ("::ffff:10.1.2.3", ["203.0.113.5"], "203.0.113.5"),
        ("::ffff:10.1.2.3", ["203.0.113.5, ::ffff:10.0.0.9"], "203.0.113.5"),
        ("::ffff:203.0.113.7", ["1.2.3.4"], "::ffff:203.0.113.7"),  # not ours: ignored
        (None, ["1.2.3.4"], "unknown"),
    ],
)
def test_client_ip(peer, forwarded, expected):
    assert client_ip(peer, forwarded, TRUSTED) == expected


def test_nothing_trusted_means_the_peer():
    assert client_ip("10.0.0.2", ["203.0.113.5"], []) == "10.0.0.2"


@pytest.mark.parametrize(
    ("ip", "counted_as"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # the same home
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next one is another
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("unknown", "unknown"),
    ],
)
def test_limits_count_an_ipv6_client_by_its_64(ip: str, counted_as: str) -> None:
    assert network_of(ip) == counted_as


def test_a_mapped_network_in_the_list_matches_too():
    mapped = [ip_network("::ffff:10.0.0.0/104")]
    assert client_ip("::ffff:10.1.2.3", ["203.0.113.5"], mapped) == "203.0.113.5"
