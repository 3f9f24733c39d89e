"""Where a webhook may be sent: a public address, or a host the operator allowed.

A webhook URL is chosen by an API user, and the delivery worker POSTs from
inside the deployment: without a guard it could reach the loopback, the cloud
metadata service (169.254.169.254) or the compose network's ClickHouse, and its
error texts would tell which ports answer. :class:`EgressGuard` refuses every
address that is not globally routable — loopback, link-local, private (10/8,
172.16/12, 192.168/16, fc00::/7, 100.64/10), multicast, unspecified, reserved,
broadcast, and IPv6 forms that embed such an IPv4 address — for a literal IP and
for each address a host name resolves to (if any one is refused, the host is).

It is asked when a subscription is created and again at every delivery attempt,
because a name may resolve elsewhere later (DNS rebinding). The attempt then
connects to the very address that was checked (:meth:`Target.pinned_url`, with the
``Host`` header and TLS server name of the URL), so a second resolution between
the check and the connection cannot move it.

Hosts the operator lists (``jiahe api --allow-webhook-host HOST[:PORT]``, or
``$JIAHE_ALLOW_WEBHOOK_HOSTS``, comma-separated) are compared with the URL's host
as written (a name, or an IP literal) and port; they are neither resolved nor
checked — the operator vouches for them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from events.errors import JiaheError

#: The environment variable of the allow-list (comma-separated HOST[:PORT]).
ALLOW_ENV = "JIAHE_ALLOW_WEBHOOK_HOSTS"
#: ``off``: resolve no host names (``system_resolver``).
DNS_ENV = "JIAHE_WEBHOOK_DNS"
DEFAULT_PORTS = {"http": 80, "https": 443}
#: NAT64's well-known prefix: its last 32 bits are an IPv4 address.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Shared address space (carrier-grade NAT): neither private nor global to ``ipaddress``.
SHARED = ipaddress.ip_network("100.64.0.0/10")

#: ``(host, port)`` → the IP addresses it resolves to (tests inject a stub).
Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def system_resolver(host: str, port: int) -> list[str]:
    """Every A and AAAA address of ``host`` (the operating system's resolver).

    ``$JIAHE_WEBHOOK_DNS=off`` turns name lookups off: only IP literals and allowed
    hosts can then be webhook peers. For a deployment without DNS to the outside,
    and for the test suite, whose servers must send nothing off the loopback — not
    even a DNS query for a fuzzed host name."""
    if os.environ.get(DNS_ENV, "").strip().lower() == "off":
        raise OSError(f"name lookups are off (${DNS_ENV})")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class WebhookRefused(JiaheError, ValueError):
    """A webhook URL that may not be used; the message is short and safe to show.

    It never carries a library's error text: the reason names a category
    (``address refused: private``), not what a probe of the address found.
    """


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be a webhook's peer (None: a global unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
            "255.255.255.255"):
        return "broadcast"
    if address.is_reserved:
        return "reserved"
    if address.is_private or address in SHARED:
        return "private"
    if not address.is_global:
        return "not global"
    return None


@dataclass(frozen=True, slots=True)
class Allowed:
    """One allow-list entry: a host name (lower case) or an IP literal, any port if None."""

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> Allowed:
        """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 literal."""
        text = entry.strip()
        host, port = text, ""
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest.removeprefix(":")
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise WebhookRefused(f"allow-list entry {entry!r}: expected HOST[:PORT]")
        return cls(_canonical(host), int(port) if port else None)

    def admits(self, host: str, port: int) -> bool:
        return self.host == host and (self.port is None or self.port == port)


def _canonical(host: str) -> str:
    """A name in lower case without a trailing dot; an IP literal in its compressed form."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Target:
    """A checked webhook URL: where to connect, and how to name the host on the wire."""

    url: str
    scheme: str
    host: str
    port: int
    #: the checked address to connect to; None for an allowed host (connect by its URL).
    address: str | None

    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host (userinfo, path kept)."""
        if self.address is None:
            return self.url
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{literal}:{self.port}" if userinfo else f"{literal}:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    def host_header(self) -> str:
        literal = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return literal
        return f"{literal}:{self.port}"


class EgressGuard:
    """The policy on webhook peers: public addresses, plus the operator's allow-list."""

    def __init__(self, allowed: Iterable[str] = (), resolve: Resolver = system_resolver
                 ) -> None:
        self.allowed = tuple(Allowed.parse(entry) for entry in allowed if entry.strip())
        self.resolve = resolve

    @classmethod
    def from_env(cls, allowed: Iterable[str] = (), resolve: Resolver = system_resolver
                 ) -> EgressGuard:
        """``allowed`` plus the entries of ``$JIAHE_ALLOW_WEBHOOK_HOSTS``."""
        from_env = os.environ.get(ALLOW_ENV, "").split(",")
        return cls([*allowed, *from_env], resolve)

    def check(self, url: str) -> Target:
        """The target of ``url``, or WebhookRefused with a short reason; resolves names
        (an allowed host is not resolved)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise WebhookRefused("url: not a valid URL") from exc
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise WebhookRefused("url: expected http:// or https:// and a host")
        host = _canonical(parts.hostname)
        port = port if port is not None else DEFAULT_PORTS[scheme]
        if any(entry.admits(host, port) for entry in self.allowed):
            return Target(url, scheme, host, port, None)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = self._resolved(host, port)
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise WebhookRefused(f"address refused: {reason}")
        return Target(url, scheme, host, port, str(addresses[0]))

    def _resolved(self, host: str, port: int) -> list[IPAddress]:
        try:
            found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self.resolve(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise WebhookRefused("host does not resolve") from exc
        if not found:
            raise WebhookRefused("host does not resolve")
        return found
