"""Facts about what the stack's servers accept without encryption, asked on their published ports
on 127.0.0.1 with clients that do not encrypt, and which of PostgreSQL's connections are encrypted."""
from __future__ import annotations

import socket

import psycopg
import requests

from steps.probes import postgres_server
from steps.probes.facts import Fact, Outcome

HOST = "127.0.0.1"
TIMEOUT_S = 3


def redis_plain_ping(port: int) -> Fact:
    """PING in plain RESP; observed: an Outcome, allowed when Redis answered in RESP (+PONG, or -NOAUTH:
    either way it speaks plain text)."""
    try:
        with socket.create_connection((HOST, port), timeout=TIMEOUT_S) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(128)
    except OSError as error:
        return Fact("PING, plain text", f"redis {HOST}:{port}", Outcome(False, f"no plain answer: {error}"))
    text = reply.decode(errors="replace").strip()
    speaks_resp = reply[:1] in (b"+", b"-")
    return Fact("PING, plain text", f"redis {HOST}:{port}",
                Outcome(speaks_resp, text if speaks_resp else f"no plain answer: {text[:80] or 'connection closed'}"))


def postgres_plain_login(port: int, user: str, password: str, dbname: str) -> Fact:
    """A login with sslmode=disable; observed: an Outcome, allowed when it signed in."""
    try:
        with psycopg.connect(host=HOST, port=port, user=user, password=password, dbname=dbname,
                             connect_timeout=TIMEOUT_S, sslmode="disable") as conn:
            conn.execute("SELECT 1")
        outcome = Outcome(True, "signed in without encryption")
    except psycopg.OperationalError as error:
        lines = str(error).strip().splitlines()
        outcome = Outcome(False, lines[-1] if lines else repr(error))
    return Fact(f"login as {user}, sslmode=disable", f"postgres {HOST}:{port}/{dbname}", outcome)


def http_plain_get(port: int, path: str) -> Fact:
    """GET http:// (not https://); observed: an Outcome, allowed when an HTTP answer came."""
    url = f"http://{HOST}:{port}{path}"
    try:
        answer = requests.get(url, timeout=TIMEOUT_S)
        outcome = Outcome(True, f"HTTP {answer.status_code}")
    except requests.RequestException as error:
        outcome = Outcome(False, f"no plain answer: {type(error).__name__}")
    return Fact(f"GET {url}", f"{HOST}:{port}", outcome)


ENCRYPTED_CONNECTIONS = """
SELECT a.usename, a.application_name, s.ssl, s.version
FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
WHERE a.client_addr IS NOT NULL ORDER BY a.usename, a.application_name
"""


def postgres_connections(port: int, user: str, password: str, dbname: str) -> Fact:
    """Every TCP connection PostgreSQL holds now (pg_stat_activity with pg_stat_ssl), as `user` (a
    member of pg_read_all_stats sees every role's): rows of (role, application, encrypted, version)."""
    return postgres_server.query(port, user, password, dbname, ENCRYPTED_CONNECTIONS)
