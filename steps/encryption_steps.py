"""Steps of section S (extra) that hold in production mode only: everything on the wire is encrypted,
and a server's name alone earns no connection. Each tries what a client that does not encrypt, or a
container that takes over a service's name, would do, and expects it refused."""
from __future__ import annotations

from pytest_bdd import then

from steps.expect import Mismatches
from steps.harness.impostor import clients_against_impostor
from steps.probes import encryption, redis_server, transport

TLS_HINT = ("production mode (TSE_MODE=production): the secrets service writes each server's TLS settings "
            "(infra/secrets/distribute: server_tls_settings) and hands out the certificates; docs/security.md")


@then("Redis, PostgreSQL, the registry and the configuration service answer no client that does not encrypt")
def _plain_text_refused(stack, evidence):
    problems = Mismatches("plain-text connections", TLS_HINT)
    for fact in (encryption.redis_plain_ping(stack.redis_port()),
                 encryption.postgres_plain_login(*stack.postgres("monitor")),
                 encryption.http_plain_get(stack.registry_port(), "/health"),
                 encryption.http_plain_get(stack.config_port(), "/health")):
        evidence.record(fact)
        problems.check(not fact.observed.allowed, f"{fact.where}: refused without TLS", fact.observed.reply, fact)
    # A second, plain port beside the TLS one would not show on the published port.
    admin = stack.redis_password("admin")
    for setting, wanted in (("port", "0"), ("tls-port", "6379")):
        fact = evidence.record(redis_server.config(stack.redis_port(), admin, setting))
        problems.check(fact.observed == wanted, f"Redis {setting} {wanted}", fact.observed, fact)
    problems.raise_any()


@then("every connection PostgreSQL holds from the network is encrypted")
def _postgres_connections_encrypted(stack, evidence):
    problems = Mismatches("PostgreSQL's connections", TLS_HINT)
    fact = evidence.record(encryption.postgres_connections(*stack.postgres("monitor")))
    rows = fact.observed
    problems.check(any(role != "monitor" for role, *_ in rows),
                   "connections of the stack's services (the registry, the configuration service, the exporter)",
                   rows, fact)
    plain = [row for row in rows if not row[2]]
    problems.check(not plain, "every one encrypted (pg_stat_ssl.ssl)", plain, fact)
    problems.raise_any()


@then("a server that takes over the names of Redis, PostgreSQL, the registry and the configuration service gets no "
      "connection from the services' own clients")
def _impostor_refused(stack, evidence):
    problems = Mismatches("clients facing a server that took over a service's name",
                          "every client verifies the server's certificate and name against the stack's CA "
                          "(infra/servicekit/servicekit/tls.py)")
    fact = evidence.record(clients_against_impostor(stack.project, transport.current().ca_file_path()))
    seen = fact.observed["impostor"]
    for client, result in fact.observed["clients"].items():
        port = str(result["port"])
        # The client must have reached the impostor (else this proves nothing), and sent it nothing.
        problems.check(seen[port]["accepted"] > 0, f"{client}: reached the impostor on {port}", seen[port], fact)
        problems.check(result["outcome"] != "connected" and seen[port]["received_after_handshake"] == 0,
                       f"{client}: refused the impostor's certificate, sent it nothing",
                       f"{result['outcome']}; the impostor received {seen[port]['received_after_handshake']} bytes",
                       fact)
    problems.raise_any()
