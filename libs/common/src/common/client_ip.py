"""The client's IP address: the direct peer, unless that peer is one of our own
proxies, in which case `X-Forwarded-For` says who it forwarded for.

The header is read from the right: each trusted proxy appends the address it
received the request from, so the first address from the right that is not a
trusted proxy is the client. Whatever a client wrote further left is ignored,
and a header from an untrusted peer is ignored entirely.

Shared by the gateway (free-tier limits) and the notifier (connections per address),
which both read `TRUSTED_PROXIES`.
"""

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from common.settings import list_from_env

Network = IPv4Network | IPv6Network


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address, networks: Sequence[Network]) -> bool:
    # A dual-stack socket reports an IPv4 peer as `::ffff:a.b.c.d`: it must still match
    # the IPv4 networks it belongs to (and the IPv6 form any `::ffff:…` network lists).
    forms = [address]
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        forms.append(address.ipv4_mapped)
    return any(form in network for form in forms for network in networks)


def client_ip(peer: str | None, forwarded_for: list[str], trusted: Sequence[Network]) -> str:
    """`forwarded_for`: every X-Forwarded-For header value, in the order received."""
    if peer is None:
        return "unknown"
    address = _parse(peer)
    if address is None or not trusted or not _trusted(address, trusted):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        forwarded = _parse(hop)
        if forwarded is None:
            break  # a malformed entry: nothing left of it can be believed
        if not _trusted(forwarded, trusted):
            return str(forwarded)
        address = forwarded
    # Every hop was one of our proxies (or the chain broke): the leftmost believable one.
    return str(address)


def network_of(ip: str) -> str:
    """What per-address limits count: an IPv4 address, or the /64 an IPv6 address is in
    (one home or server gets a whole /64, so counting single addresses counts nothing).
    An IPv4-mapped IPv6 address counts as its IPv4 address."""
    address = _parse(ip)
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(IPv6Network((address, 64), strict=False))
    return ip


def parse_networks(value: Any) -> Any:
    """`TRUSTED_PROXIES` as a JSON list or comma-separated (`10.0.0.0/8, fd00::/8`)."""
    networks = (str(n).strip() for n in list_from_env(value))
    return [ip_network(n, strict=False) for n in networks if n]
