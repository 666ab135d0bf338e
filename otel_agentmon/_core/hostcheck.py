"""Who may ask what of our local HTTP endpoints (serve's dashboard, the health endpoint).

* ``host_allowed``: a server bound to a loopback address answers only requests addressed to a
  loopback name (``Host: 127.0.0.1``, ``localhost`` or ``[::1]``, any port): a web page that the
  browser fetched from a rebound DNS name cannot read it (DNS rebinding).
* ``is_loopback``: whether an address (a bind address or a client's) is this machine's.
* ``token_matches``: a constant-time comparison of a presented access token.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Final

_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP (``127.0.0.0/8``, ``::1``, or IPv4 loopback mapped into IPv6)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def host_allowed(header: str | None, bound: str) -> bool:
    """Whether a request with this ``Host`` header may be answered by a server bound to ``bound``
    (a loopback bind only answers requests addressed to a loopback name)."""
    if not is_loopback(bound):
        return True
    if header is None:
        return True  # HTTP/1.0 clients; browsers always send a Host
    host = header.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        name, port = name + "]", rest.removeprefix(":")
    else:
        name, _, port = host.partition(":")
    if port and not port.isdigit():
        return False
    shown = f"[{bound.lower()}]" if ":" in bound else bound.lower()
    return name in _LOOPBACK_NAMES or name == shown


def token_matches(presented: str | None, token: str | None) -> bool:
    """``presented`` is ``token`` (compared in constant time); never true without a token."""
    if not token or presented is None:
        return False
    return hmac.compare_digest(presented.encode(), token.encode())
