"""Run inside a scratch container of the registry's image (steps/harness/impostor.py), not on the host.

A server takes over the names of Redis, PostgreSQL, the registry and the configuration service: in
this container they resolve to it (127.0.0.1), and it holds a certificate for those names that the
stack's CA did not sign. The services' own client code then connects by those names exactly as in
production mode (TSE_MODE=production, the stack's CA at /run/secrets/ca.crt). Prints one JSON object:
{client: {"outcome": the client's error or "connected", "port": the impostor's port}} and, under
"impostor", what it saw per port: connections accepted, and bytes received after the TLS handshake
(a client that sent anything trusted it)."""
import contextlib
import io
import json
import socket
import ssl
import threading

IMPOSTOR_PEM = "/run/secrets/impostor.pem"
PORTS = {"redis": 6379, "postgres": 5432, "service-registry": 8080, "configuration-service": 8090}
seen = {port: {"accepted": 0, "received_after_handshake": 0} for port in PORTS.values()}


def impersonate(listener: socket.socket, port: int, context: ssl.SSLContext) -> None:
    while True:
        conn, _ = listener.accept()
        seen[port]["accepted"] += 1
        try:
            conn.settimeout(3)
            if port == PORTS["postgres"]:
                conn.recv(8)          # libpq's SSLRequest: say yes, then the handshake
                conn.sendall(b"S")
            with context.wrap_socket(conn, server_side=True) as tls:
                seen[port]["received_after_handshake"] += len(tls.recv(4096))
        except OSError:
            conn.close()


def attempt(work) -> str:
    try:
        work()
        return "connected"
    except Exception as error:  # noqa: BLE001 - every client's own error is the fact
        return f"{type(error).__name__}: {error}"[:300]


def run_healthcheck(healthcheck) -> None:
    """The healthcheck's main(), its one line kept out of the JSON and raised when it failed."""
    line = io.StringIO()
    with contextlib.redirect_stdout(line):
        failed = healthcheck.main() != 0
    if failed:
        raise OSError(line.getvalue().strip())


def main() -> None:
    from registry import healthcheck, infrastructure
    from servicekit.redis_client import connect

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(IMPOSTOR_PEM)
    for port in PORTS.values():
        listener = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=impersonate, args=(listener, port, context), daemon=True).start()
    clients = {
        "Redis, servicekit.redis_client (both services)": (
            PORTS["redis"], lambda: connect("redis://redis:6379/0", "registry-service", "a password").ping()),
        "PostgreSQL, registry.infrastructure.probe_postgres": (
            PORTS["postgres"], lambda: infrastructure.probe_postgres(
                {"host": "postgres", "port": 5432, "database": "trading_ecosystem", "user": "service_registry"},
                "a password")),
        "configuration service, registry.infrastructure.probe_http": (
            PORTS["configuration-service"],
            lambda: infrastructure.probe_http({"health_url": "http://configuration-service:8090/health"})),
        "registry, its healthcheck (registry.healthcheck)": (
            PORTS["service-registry"], lambda: run_healthcheck(healthcheck)),
    }
    results = {name: {"port": port, "outcome": attempt(work)} for name, (port, work) in clients.items()}
    print(json.dumps({"clients": results, "impostor": {str(port): s for port, s in seen.items()}}))


if __name__ == "__main__":
    main()
