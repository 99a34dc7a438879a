"""Which webhook URLs we may POST to: http(s) only, never link-local/metadata addresses or a database.

Checked when a saved search is created (a clear 422) and again right before
each delivery (DNS may have changed since). Private and loopback addresses are
refused too unless ALERT_WEBHOOK_ALLOW_PRIVATE is set (tests, intranets);
even then the database ports stay off limits. A delivery connects to the
address this check approved (``resolve_webhook_url``), never to what a second
DNS lookup returns, so a name that re-resolves between the check and the
request (DNS rebinding) cannot steer the POST to a refused address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

# Cloud instance-metadata endpoints reachable by name (their addresses are link-local anyway).
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.com"})
DEFAULT_DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeWebhookURL(ValueError):
    """The URL may not be called; the message says why in one line."""


def _resolve(host: str, port: int) -> set[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookURL(f"host {host!r} does not resolve ({exc})") from None
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


def database_endpoints(db_urls: Iterable[str | None]) -> set[tuple[Address, int]]:
    """(address, port) of every network database named by ``db_urls`` (SQLite files have none)."""
    found: set[tuple[Address, int]] = set()
    for raw in db_urls:
        if not raw:
            continue
        try:
            url = make_url(raw.removeprefix("db+"))  # Celery's result backend spells it db+postgresql://
        except Exception:
            continue
        backend = url.get_backend_name()
        if backend == "sqlite" or not url.host:
            continue
        port = url.port or DEFAULT_DB_PORTS.get(backend, 0)
        try:
            found |= {(addr, port) for addr in _resolve(url.host, port)}
        except UnsafeWebhookURL:
            continue
    return found


def check_webhook_url(url: str, *, allow_private: bool, db_urls: Iterable[str | None] = ()) -> str:
    """The URL when it is safe to POST to; raises UnsafeWebhookURL otherwise."""
    return resolve_webhook_url(url, allow_private=allow_private, db_urls=db_urls)[0]


def resolve_webhook_url(url: str, *, allow_private: bool, db_urls: Iterable[str | None] = ()) -> tuple[str, str]:
    """(URL, the address to connect to) when every address the host resolves to is safe; raises otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in {"http", "https"}:
        raise UnsafeWebhookURL(f"webhook URL must use http or https, not {parts.scheme or 'no scheme'!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeWebhookURL("webhook URL has no host")
    if parts.username or parts.password:
        raise UnsafeWebhookURL("webhook URL must not carry credentials; the payload is signed instead")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise UnsafeWebhookURL("webhook URL has an invalid port") from None
    if host in METADATA_HOSTS:
        raise UnsafeWebhookURL(f"webhook host {host!r} is a cloud metadata service")
    databases = database_endpoints(db_urls)
    addresses = sorted(_resolve(host, port), key=lambda a: (a.version, int(a)))  # IPv4 first, stable
    for addr in addresses:
        mapped = getattr(addr, "ipv4_mapped", None) or addr
        if mapped.is_link_local or mapped.is_multicast or mapped.is_unspecified or mapped.is_reserved:
            raise UnsafeWebhookURL(f"webhook host {host!r} resolves to {mapped}, a link-local/metadata "
                                   "or reserved address")
        if not allow_private and (mapped.is_private or mapped.is_loopback):
            raise UnsafeWebhookURL(f"webhook host {host!r} resolves to private address {mapped} "
                                   "(set ALERT_WEBHOOK_ALLOW_PRIVATE=true to allow)")
        if (mapped, port) in databases or (addr, port) in databases:
            raise UnsafeWebhookURL(f"webhook URL points at a database ({host}:{port})")
    return url.strip(), str(addresses[0])
