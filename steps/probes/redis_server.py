"""Facts about the running Redis server, asked over its published port on 127.0.0.1.

Each function opens a short-lived connection as one ACL user, asks one thing and returns a Fact.
"""
from __future__ import annotations

import uuid
from typing import Callable, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError, ResponseError, TimeoutError
from redis.retry import Retry

from steps.probes import transport
from steps.probes.facts import Fact, Outcome, ProbeError
from steps.probes.waiting import poll

HOST = "127.0.0.1"
T = TypeVar("T")
TIMEOUT_S = 3.0


def _where(port: int, user: str | None) -> str:
    return f"redis 127.0.0.1:{port} as {user or 'no user'}"


def connect(port: int, user: str | None, password: str | None, timeout: float = TIMEOUT_S) -> redis.Redis:
    # RESP2 and no retries: a probe reports what the server said once; waiting is the caller's job
    # (redis-py's default retries with backoff turn one refusal into seconds of delay).
    return redis.Redis(
        host=HOST, port=port, username=user, password=password, protocol=2, retry=Retry(NoBackoff(), 0),
        socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True,
        **transport.current().redis_options(),   # TLS in production mode
    )


def _refusal(error: Exception) -> str:
    """The server's error line: redis-py strips the error code of the errors it maps to classes."""
    text = str(error)
    if isinstance(error, NoPermissionError) and not text.startswith("NOPERM"):
        return f"NOPERM {text}"
    if isinstance(error, AuthenticationError) and not text.startswith(("WRONGPASS", "NOAUTH")):
        noauth = 'required' in text.lower() or 'authenticated' in text.lower()
        return f"{'NOAUTH' if noauth else 'WRONGPASS'} {text}"
    return text


# What the server says no with (ACL, a wrong password, a command it refuses), and what means it did
# not answer at all.
REFUSALS = (AuthenticationError, NoPermissionError, ResponseError)
UNREACHABLE = (ConnectionError, TimeoutError)


def attempt(port: int, user: str | None, password: str | None, probe: str, work: Callable[[redis.Redis], T]
            ) -> T | Outcome:
    """`work` on a connection as `user`: its result, or a refused Outcome when the server refuses
    (ACL, password, command); raises ProbeError when Redis does not answer at all."""
    try:
        with connect(port, user, password) as conn:
            return work(conn)
    except REFUSALS as error:
        return Outcome(False, _refusal(error))
    except UNREACHABLE as error:
        raise ProbeError(f"redis 127.0.0.1:{port} did not answer {probe!r}: {error}") from error


def ask(port: int, user: str | None, password: str | None, probe: str, work: Callable[[redis.Redis], T]) -> T:
    """`work` on a connection as `user`, for a probe that needs the answer (an admin read, a value
    written on purpose): a refusal or no answer at all is one ProbeError naming both."""
    result = attempt(port, user, password, probe, work)
    if isinstance(result, Outcome) and not result.allowed:
        raise ProbeError(f"redis 127.0.0.1:{port} as {user or 'no user'}: {probe!r} refused: {result.reply}")
    return result


def run(port: int, user: str | None, password: str | None, *command: str) -> Fact:
    """Run one command as `user`; the Fact's value is an Outcome. Raises ProbeError when Redis does
    not answer at all."""
    probe = " ".join(command)
    outcome = attempt(port, user, password, probe, lambda conn: Outcome(True, str(conn.execute_command(*command))))
    return Fact(probe, _where(port, user), outcome, raw=outcome.reply[:500])


def ping(port: int, user: str | None, password: str | None) -> Fact:
    """PING as `user`: observed is "PONG" or the refusal."""
    fact = run(port, user, password, "PING")
    outcome = fact.observed
    return Fact(fact.probe, fact.where, "PONG" if outcome.allowed and outcome.reply == "True" else outcome.reply)


def config(port: int, admin_password: str, name: str) -> Fact:
    """CONFIG GET `name` as admin, read from the running server."""
    value = ask(port, "admin", admin_password, f"CONFIG GET {name}", lambda conn: conn.config_get(name).get(name))
    return Fact(f"CONFIG GET {name}", _where(port, "admin"), value)


def pattern_subscribers(port: int, admin_password: str) -> Fact:
    """CLIENT LIST as admin: {user: pattern subscriptions} of the clients holding any (psub)."""
    def read(conn) -> dict:
        held: dict = {}
        for client in conn.client_list():
            if int(client.get("psub", 0)):
                held[client["user"]] = held.get(client["user"], 0) + int(client["psub"])
        return held

    return Fact("CLIENT LIST (psub)", _where(port, "admin"), ask(port, "admin", admin_password, "CLIENT LIST", read))


def acl_users(port: int, admin_password: str) -> Fact:
    """ACL USERS as admin: the set of users the running server knows."""
    users = ask(port, "admin", admin_password, "ACL USERS", lambda conn: conn.acl_users())
    return Fact("ACL USERS", _where(port, "admin"), frozenset(users))


def acl_dry_run(port: int, admin_password: str, user: str, *command: str) -> Fact:
    """ACL DRYRUN: would the running server let `user` run `command`? Nothing is executed, so the
    check is safe for destructive commands (FLUSHALL) on a stack that is not ours."""
    probe = f"ACL DRYRUN {user} {' '.join(command)}"
    try:
        with connect(port, "admin", admin_password) as conn:
            reply = conn.execute_command("ACL", "DRYRUN", user, *command)
        outcome = Outcome(str(reply) == "OK", str(reply))
    except ResponseError as error:
        outcome = Outcome(False, _refusal(error))
    return Fact(probe, _where(port, "admin"), outcome, raw=outcome.reply[:500])


def write_and_read_back(port: int, user: str, password: str, key_prefix: str) -> Fact:
    """As `user`, SET a uniquely named key under `key_prefix` (expiring in 60 s), read it back and
    delete it. observed is an Outcome: allowed when the value came back."""
    key = f"{key_prefix}acceptance-probe:{uuid.uuid4().hex[:12]}"
    probe = f"SET {key} … PX 60000; GET; DEL"

    def work(conn) -> Outcome:
        conn.set(key, "probe", px=60_000)
        value = conn.get(key)
        conn.delete(key)
        return Outcome(value == "probe", f"read back {value!r}")

    outcome = attempt(port, user, password, probe, work)
    return Fact(probe, _where(port, user), outcome, raw=outcome.reply)


def publish(port: int, user: str, password: str, channel: str) -> Fact:
    """PUBLISH on `channel` as `user`; observed is an Outcome."""
    return run(port, user, password, "PUBLISH", channel, "acceptance-probe")


def registry_round_trip(port: int, user: str, password: str, ttl_s: int = 60) -> Fact:
    """As `user`, store a service instance the way the registry does (a hash at
    registry:services:{name}:{instance} with a TTL), find it with SCAN MATCH and delete it.

    observed: {"stored": bool, "ttl": int, "found_by_scan": bool} or an Outcome when refused.
    """
    instance = uuid.uuid4().hex[:12]
    key = f"registry:services:acceptance-probe:{instance}"
    probe = f"HSET {key} …; EXPIRE {ttl_s}; SCAN MATCH registry:services:acceptance-probe:*; DEL"

    def work(conn) -> dict:
        conn.hset(key, mapping={"name": "acceptance-probe", "instance_id": instance, "status": "healthy"})
        conn.expire(key, ttl_s)
        ttl = conn.ttl(key)
        found = key in set(conn.scan_iter(match="registry:services:acceptance-probe:*", count=1000))
        conn.delete(key)
        return {"stored": True, "ttl": ttl, "found_by_scan": found}

    return Fact(probe, _where(port, user), attempt(port, user, password, probe, work))


# The commands the ecosystem's services run (docs/registry.md: "What each service of the ecosystem uses"),
# each with the arguments their code gives it, on one key (SCAN and KEYS: on its pattern).
SERVICE_COMMANDS = {
    "PING": lambda key, pattern: ("PING",),
    "SET": lambda key, pattern: ("SET", key, "acceptance-probe", "EX", "90"),
    "GET": lambda key, pattern: ("GET", key),
    "EXISTS": lambda key, pattern: ("EXISTS", key),
    "EXPIRE": lambda key, pattern: ("EXPIRE", key, "90"),
    "TTL": lambda key, pattern: ("TTL", key),
    "DEL": lambda key, pattern: ("DEL", key),
    "HSET": lambda key, pattern: ("HSET", key, "name", "acceptance-probe"),
    "HGETALL": lambda key, pattern: ("HGETALL", key),
    "SCAN": lambda key, pattern: ("SCAN", "0", "MATCH", pattern, "COUNT", "100"),
    "DBSIZE": lambda key, pattern: ("DBSIZE",),
    "MEMORY USAGE": lambda key, pattern: ("MEMORY", "USAGE", key),
    "KEYS": lambda key, pattern: ("KEYS", pattern),
}


def run_as_service(port: int, user: str, password: str, pattern: str, commands: list[str]) -> Fact:
    """As `user`, over one connection, `commands` (names of SERVICE_COMMANDS) in order on a fresh key
    matching `pattern` (its `*` made unique). observed: {"key", "outcomes": {command: Outcome}}; the
    key is deleted at the end whatever happened."""
    key = pattern.replace("*", f"acceptance-{uuid.uuid4().hex[:10]}", 1)
    probe = f"{', '.join(commands)} on {key}"

    def work(conn) -> dict:
        # Each command on its own: a refusal is its outcome, and the next one still runs.
        outcomes = {name: attempt_on(conn, lambda name=name: Outcome(True, str(conn.execute_command(
            *SERVICE_COMMANDS[name](key, pattern)))[:200])) for name in commands}
        attempt_on(conn, lambda: conn.delete(key))  # refused: then nothing was written either
        return {"key": key, "outcomes": outcomes}

    observed = attempt(port, user, password, probe, work)
    if isinstance(observed, Outcome):  # refused before any command: the login itself
        observed = {"key": key, "outcomes": dict.fromkeys(commands, observed)}
    return Fact(probe, _where(port, user), observed)


def attempt_on(conn: redis.Redis, command: Callable[[], T]) -> T | Outcome:
    """One command on an open connection: its result, or a refused Outcome."""
    try:
        return command()
    except REFUSALS as error:
        return Outcome(False, _refusal(error))


def write_hash(port: int, user: str, password: str, key: str, fields: dict, ttl_s: int) -> Fact:
    """As `user`, HSET `fields` on `key` and EXPIRE it in `ttl_s` (a service registering itself in
    Redis); observed is an Outcome."""
    probe = f"HSET {key} {' '.join(fields)}; EXPIRE {key} {ttl_s}"

    def work(conn) -> Outcome:
        conn.hset(key, mapping=fields)
        conn.expire(key, ttl_s)
        return Outcome(True, "stored")

    outcome = attempt(port, user, password, probe, work)
    return Fact(probe, _where(port, user), outcome, raw=outcome.reply)


def acl_log(port: int, admin_password: str) -> Fact:
    """ACL LOG as admin: the server's recent denials, newest first, as dicts."""
    entries = ask(port, "admin", admin_password, "ACL LOG", lambda conn: conn.acl_log())
    return Fact("ACL LOG", _where(port, "admin"), entries)


def plain_text_passwords(acl_text: str) -> list[str]:
    """Users of an ACL file with a plain-text password (`>secret`) instead of a hash (`#hex`)."""
    users = []
    for line in acl_text.splitlines():
        tokens = line.split()
        if len(tokens) >= 2 and tokens[0] == "user" and any(t.startswith(">") for t in tokens[2:]):
            users.append(tokens[1])
    return users


def ping_over_tcp_command(host: str, port: int, user: str) -> list[str]:
    """A bash command that signs in and PINGs Redis at host:port by raw RESP over /dev/tcp, for a
    container without redis-cli; the password comes from $PROBE_PASSWORD. Prints Redis's replies."""
    script = (
        f"exec 3<>/dev/tcp/{host}/{port} || exit 2; "
        f"printf 'AUTH {user} %s\\r\\nPING\\r\\n' \"$PROBE_PASSWORD\" >&3; "
        "timeout 3 head -n 2 <&3 | tr -d '\\r'"
    )
    return ["bash", "-c", script]


# The same exchange over TLS, by Python's ssl module (in a container of the stack that has Python and
# the stack's CA): the server's certificate and name are verified before anything is sent.
PING_OVER_TLS = """
import os, socket, ssl, sys
host, port, user, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile=ca)
with context.wrap_socket(socket.create_connection((host, port), timeout=3), server_hostname=host) as conn:
    conn.sendall(b"AUTH %s %s\\r\\nPING\\r\\n" % (user.encode(), os.environ["PROBE_PASSWORD"].encode()))
    replies = b""
    while replies.count(b"\\r\\n") < 2:
        chunk = conn.recv(4096)
        if not chunk:
            break
        replies += chunk
print(replies.decode().replace("\\r", ""), end="")
"""


def ping_over_tls_command(host: str, port: int, user: str, ca_file: str) -> list[str]:
    """A command that signs in and PINGs Redis at host:port over TLS, verifying its certificate against
    `ca_file` (in the container it runs in); the password comes from $PROBE_PASSWORD."""
    return ["python3", "-c", PING_OVER_TLS, host, str(port), user, ca_file]


def set_value(port: int, user: str, password: str, key: str, value: str) -> Fact:
    """SET `key` as `user`, without expiry (for scenarios that must leave data behind on purpose)."""
    reply = ask(port, user, password, f"SET {key}", lambda conn: conn.set(key, value))
    return Fact(f"SET {key} {value}", _where(port, user), reply)


def get_value(port: int, user: str, password: str, key: str) -> Fact:
    """GET `key` as `user`."""
    value = ask(port, user, password, f"GET {key}", lambda conn: conn.get(key))
    return Fact(f"GET {key}", _where(port, user), value)


def acl_user_flags(port: int, admin_password: str, user: str) -> Fact:
    """ACL GETUSER `user` as admin: the user's flags as the running server holds them (e.g. off)."""
    found = ask(port, "admin", admin_password, f"ACL GETUSER {user}", lambda conn: conn.acl_getuser(user))
    return Fact(f"ACL GETUSER {user}", _where(port, "admin"), sorted((found or {}).get("flags", [])))


def timed_ping(port: int, user: str, password: str, timeout: float) -> Fact:
    """PING as `user` with a client timeout of `timeout` s; observed: {"answer", "seconds"}, where
    answer is "PONG" or the client's error (class and message)."""
    import time

    started = time.monotonic()
    try:
        with connect(port, user, password, timeout=timeout) as conn:
            answer = "PONG" if conn.ping() else "no PONG"
    except (ConnectionError, TimeoutError, ResponseError) as error:
        answer = f"{type(error).__name__}: {error}"
    seconds = round(time.monotonic() - started, 3)
    return Fact(f"PING (client timeout {timeout} s)", _where(port, user), {"answer": answer, "seconds": seconds})


def stored_instance(port: int, user: str, password: str, key: str) -> Fact:
    """As `user`: is `key` found by SCAN MATCH on its prefix, its TTL and its fields."""
    prefix = key.rsplit(":", 1)[0] + ":*"
    observed = ask(port, user, password, f"SCAN MATCH {prefix}; TTL; HGETALL {key}", lambda conn: {
        "found_by_scan": key in set(conn.scan_iter(match=prefix, count=1000)), "ttl": conn.ttl(key),
        "fields": conn.hgetall(key)})
    return Fact(f"SCAN MATCH {prefix}; TTL; HGETALL {key}", _where(port, user), observed)


class ChannelListener:
    """Messages published on one channel, collected from the moment of subscription until `close`."""

    def __init__(self, port: int, user: str, password: str, channel: str):
        self.channel, self.where = channel, _where(port, user)
        self._connection = connect(port, user, password)
        self._pubsub = self._connection.pubsub(ignore_subscribe_messages=True)
        try:
            self._pubsub.subscribe(channel)
            self._pubsub.get_message(timeout=1.0)  # the subscription's confirmation
        except (AuthenticationError, NoPermissionError, ResponseError) as error:
            self.close()
            raise ProbeError(f"redis: {user} may not subscribe to {channel}: {_refusal(error)}") from error

    def messages(self, timeout: float) -> Fact:
        """Every message received within `timeout` s (waits only while none has come yet)."""
        received = []

        def some_arrived() -> bool:
            # Drain what is there (each get_message waits at most 0.2 s for the next one).
            while message := self._pubsub.get_message(timeout=0.2):
                if message.get("type") == "message":
                    received.append(message["data"])
            return bool(received)

        poll(some_arrived, timeout=timeout, interval=0)
        return Fact(f"SUBSCRIBE {self.channel}", self.where, received)

    def close(self) -> None:
        try:
            self._pubsub.close()
        finally:
            self._connection.close()


def write_keys(port: int, user: str, password: str, keys: list, ttl_s: int = 300) -> Fact:
    """SET each key (a small value, expiring after `ttl_s` even if nobody deletes it), pipelined, as
    `user`: what a domain's cache writes. Observed: how many were written."""
    def work(conn):
        with conn.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.set(k, "cached", ex=ttl_s)
            return sum(bool(reply) for reply in pipe.execute())
    return Fact(f"SET {keys[0]} … ({len(keys)} keys, EX {ttl_s})", _where(port, user),
                ask(port, user, password, "SET (pipelined)", work))


def delete_keys(port: int, user: str, password: str, keys: list) -> None:
    ask(port, user, password, "DEL", lambda conn: conn.delete(*keys) if keys else 0)


def command_calls(port: int, admin_password: str, command: str) -> int:
    """How many times the server has run `command` since it started (INFO commandstats), every client's."""
    stats = ask(port, "admin", admin_password, "INFO commandstats", lambda conn: conn.info("commandstats"))
    return int((stats.get(f"cmdstat_{command.lower()}") or {}).get("calls", 0))


def sorted_set_score(port: int, admin_password: str, key: str, member: str) -> Fact:
    """The score of `member` in the sorted set `key`, None when it is not a member (read as admin)."""
    return Fact(f"ZSCORE {key} {member}", _where(port, "admin"),
                ask(port, "admin", admin_password, "ZSCORE", lambda conn: conn.zscore(key, member)))
