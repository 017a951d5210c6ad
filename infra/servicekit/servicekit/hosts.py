"""Which Host a request may carry, for both services: the names of their allowed hosts
(REGISTRY_ALLOWED_HOSTS, CONFIG_ALLOWED_HOSTS; Starlette's check), and any address of the networks
listed there ("172.20.0.0/16"). On Docker Swarm a replica has any address of its networks, and
Prometheus scrapes each replica by its address; a page on a rebound DNS name still carries that name,
which is refused with 400 (DNS rebinding)."""
from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware


def split_allowed(entries) -> tuple[list[str], list]:
    """(names, networks) of the allowed entries: an entry with a "/" is a network."""
    names = [entry for entry in entries if "/" not in entry]
    networks = [ipaddress.ip_network(entry, strict=False) for entry in entries if "/" in entry]
    return names, networks


class TrustedHosts:
    """TrustedHostMiddleware for the names, plus any IPv4 address of the allowed networks."""

    def __init__(self, app, allowed_hosts) -> None:
        names, self.networks = split_allowed(allowed_hosts)
        self.app = app
        self.by_name = TrustedHostMiddleware(app, allowed_hosts=names)

    def _in_networks(self, scope) -> bool:
        host = Headers(scope=scope).get("host", "").split(":")[0]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket") and self.networks and self._in_networks(scope):
            await self.app(scope, receive, send)
            return
        await self.by_name(scope, receive, send)
