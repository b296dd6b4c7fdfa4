"""The one way to fetch a URL a user gave: an SSRF guard around httpx.

Webhook endpoints (and, later, a catalogue's photo URLs) are URLs that users type, and
the services that fetch them sit inside the cluster, next to MongoDB, RabbitMQ and the
cloud's metadata service. So every such request goes through `OutboundClient`:

- `validate_url` refuses what is wrong on its face: not `https`, credentials in the URL,
  no host, an IP literal that is not public (at registration, for a clear 422);
- the address is checked **at connect time**: the client's network backend resolves the
  name itself, refuses unless every address is public (no loopback, private, link-local,
  shared, multicast or reserved range, the metadata address 169.254.169.254, nor their
  IPv6 equivalents and IPv4 addresses wrapped in IPv6), and connects to the address it
  checked, so a DNS answer that changes between a check and the connect (rebinding)
  cannot slip through. TLS still verifies the certificate against the name;
- redirects are not followed unless asked for, and then each hop is checked again;
- the whole exchange has a deadline and the response body a size cap;
- proxies from the environment are ignored (the check must see the real target).

`OUTBOUND_ALLOW_PRIVATE=true` (development and tests only; refused with
`ENVIRONMENT=production`) allows `http` and private or loopback targets.
"""

import asyncio
import contextvars
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MIB = 1024 * 1024
DNS_TIMEOUT_SECONDS = 5.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Special-purpose ranges that Python's `is_global` lets through (IANA registries).
_ALSO_NOT_PUBLIC = (
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("192.88.99.0/24"),  # 6to4 relay anycast
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
)


# Set while a request of an OutboundClient runs: httpx's own log line of it shows only the
# target's origin (a user's URL may carry a token in its path or query).
_OUTBOUND = contextvars.ContextVar("outbound", default=False)


class _OriginOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _OUTBOUND.get() and isinstance(record.args, tuple):
            record.args = tuple(
                f"{a.scheme}://{a.netloc.decode()}/…" if isinstance(a, httpx.URL) else a
                for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_OriginOnly())


class OutboundError(Exception):
    """A request to a user's URL did not get an answer; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class OutboundRefused(OutboundError):
    """The guard refused the URL or its address: retrying will not help."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), which is where a
    packet to it may end up."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(address: str | IPAddress) -> bool:
    """Whether an address is on the public internet: not loopback, private, link-local
    (169.254.169.254, the metadata service, included), shared (100.64/10), multicast,
    reserved, unspecified or documentation space, in IPv4 or IPv6."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:  # fe80::1%eth0 and the like: on-link only
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public(embedded)
        if ip.is_site_local:
            return False
    if any(ip in network for network in _ALSO_NOT_PUBLIC):
        return False
    return bool(ip.is_global) and not ip.is_multicast and not ip.is_reserved


def _refuse_address(host: str, ip: IPAddress) -> OutboundRefused:
    return OutboundRefused(
        "private_address",
        f"{host} is at {ip}, which is not a public address.",
    )


def validate_url(url: str, *, allow_private: bool = False) -> httpx.URL:
    """The URL, if it may be fetched as far as can be told without DNS; OutboundRefused
    otherwise. The address is checked again when the connection is made."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise OutboundRefused("invalid_url", "The URL is not valid.") from e
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        raise OutboundRefused("insecure_url", "The URL must start with https://.")
    if not parsed.host:
        raise OutboundRefused("invalid_url", "The URL has no host.")
    if parsed.userinfo:
        raise OutboundRefused("invalid_url", "The URL must not carry a user name or password.")
    if parsed.fragment:
        raise OutboundRefused("invalid_url", "The URL must not have a #fragment.")
    try:
        literal: IPAddress | None = ipaddress.ip_address(parsed.host)
    except ValueError:
        literal = None
    if literal is not None and not allow_private and not is_public(literal):
        raise _refuse_address(parsed.host, literal)
    return parsed


async def resolve(host: str, port: int, *, allow_private: bool = False) -> list[IPAddress]:
    """Every address the name resolves to; OutboundRefused unless all are public (one
    private address among public ones is refused too: the connect could pick it)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(DNS_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, TimeoutError) as e:
        raise OutboundError("dns_failed", f"{host} could not be resolved.") from e
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise OutboundError("dns_failed", f"{host} has no address.")
    if not allow_private:
        for ip in addresses:
            if not is_public(ip):
                raise _refuse_address(host, ip)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check at connect time: the name is
    resolved here, every address checked, and the connection made to a checked one."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port, allow_private=self.allow_private)
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("invalid_url", "Unix sockets are not reachable from outside.")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allow_private: bool, max_connections: int) -> None:
        super().__init__(trust_env=False)
        # httpx has no parameter for the network backend: its pool is replaced by one
        # with the guarded backend (the same settings otherwise).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(allow_private),
        )


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    headers: Mapping[str, str]
    content: bytes
    elapsed: float  # seconds, from the start of the request to the end of the body
    truncated: bool = field(default=False)  # the body was longer than max_bytes


class OutboundClient:
    """Requests to URLs users gave, through the guard. One per process (it pools
    connections); close it with `aclose`."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 10.0,
        max_bytes: int = MIB,
        max_connections: int = 100,
        user_agent: str = "ProductVideos/1.0",
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(allow_private, max_connections),
            follow_redirects=False,
            trust_env=False,
            timeout=timeout,
            headers={"User-Agent": user_agent},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        deadline: float | None = None,
        max_bytes: int | None = None,
        truncate: bool = False,
        max_redirects: int = 0,
    ) -> OutboundResponse:
        """Send the request and read the answer within `deadline` seconds in all (the
        client's `timeout` by default). A body over `max_bytes` is OutboundRefused
        (`too_large`), or cut there if `truncate`.
        A redirect is answered as it came unless `max_redirects` allows following it
        (each hop checked again, GET only)."""
        deadline = deadline or self.timeout
        cap = self.max_bytes if max_bytes is None else max_bytes
        started = time.monotonic()
        hidden = _OUTBOUND.set(True)
        try:
            async with asyncio.timeout(deadline):
                for _ in range(max_redirects + 1):
                    target = validate_url(url, allow_private=self.allow_private)
                    response = await self._send(method, target, headers, content, cap, truncate)
                    location = response.headers.get("location")
                    if not (300 <= response.status_code < 400 and location and max_redirects):
                        break
                    if method != "GET":
                        break
                    url = str(target.join(location))
                    max_redirects -= 1
        except TimeoutError:
            raise OutboundError("timeout", f"No answer within {deadline:g} s.") from None
        except httpx.TimeoutException:
            raise OutboundError("timeout", f"No answer within {deadline:g} s.") from None
        except httpx.HTTPError as e:
            raise OutboundError("connect_failed", _describe(e)) from None
        finally:
            _OUTBOUND.reset(hidden)
        return OutboundResponse(
            response.status_code,
            response.headers,
            response.content,
            time.monotonic() - started,
            response.truncated,
        )

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        cap: int,
        truncate: bool,
    ) -> OutboundResponse:
        started = time.monotonic()
        request = self._client.build_request(method, url, headers=headers, content=content)
        response = await self._client.send(request, stream=True)
        try:
            body = bytearray()
            truncated = False
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > cap:
                    if not truncate:
                        raise OutboundRefused(
                            "too_large", f"The answer is larger than {cap} bytes."
                        )
                    truncated = True
                    del body[cap:]
                    break
        finally:
            await response.aclose()
        return OutboundResponse(
            response.status_code,
            response.headers,
            bytes(body),
            time.monotonic() - started,
            truncated,
        )


def _describe(error: httpx.HTTPError) -> str:
    text = str(error) or type(error).__name__
    return f"The request failed: {text}"[:300]
