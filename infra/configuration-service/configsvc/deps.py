"""What the routes depend on: the service's state (settings, store, Redis, metrics, change signal),
the reads that wait for a change or probe a dependency within a deadline, and who writes: an
editor signed in with HTTP Basic as its Redis ACL user."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Callable, Dict, Optional, Tuple

import redis
from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from configsvc.metrics import Metrics
from configsvc.model import Row, canonical_environment, check_key, check_service, resolve
from configsvc.notifier import CHANNEL, ChangeListener, ChangeSignal, Notifier
from configsvc.settings import Settings
from configsvc.store import Store
from servicekit.http import log_cause
from servicekit.readcache import ReadCache
from servicekit.signin import Caller, RedisSignIns, basic_sign_in

log = logging.getLogger("configsvc")
HEALTH_TIMEOUT_S = 2.0  # each dependency's probe: /health answers within ~2 s even when one hangs
MAX_HANGING_PROBES = 4  # probes still stuck in a hung dependency; past this, it is reported down at once
RECHECK_S = 1.0  # a waiting request reads again at least this often, signalled or not


class ConfigState:
    """One per app: what every route reads and writes through."""

    def __init__(self, settings: Settings, store: Store, client: redis.Redis, sign_ins: RedisSignIns):
        self.settings, self.store, self.client, self.sign_ins = settings, store, client, sign_ins
        self.default_environment = canonical_environment(settings.default_environment)
        self.metrics, self.signal = Metrics(), ChangeSignal()
        self.notifier = Notifier(client, self.signal, self.metrics)
        self.cache = ReadCache(client, CHANNEL)  # the reads, kept at most 1 s, forgotten on each change
        self.listener = ChangeListener(client, self.signal)
        self.hanging = threading.BoundedSemaphore(MAX_HANGING_PROBES)
        self.waiting = 0  # requests in wait_for_change (one event loop: no lock needed)
        self.waiting_by_client: Dict[str, int] = {}  # of those, per client address (none at 0)

    def locate(self, key: str, environment: Optional[str], service: Optional[str]) -> Tuple[str, str]:
        """(environment, service) of a request after checking them and the key; raises Invalid."""
        check_key(key)
        return canonical_environment(environment, self.default_environment), check_service(service)

    def lookup(self, environment: str, key: str, service: str) -> Optional[Row]:
        """The row `service` sees for `key` in `environment` (its own over the environment-wide one)."""
        return resolve(self.store.get_rows(environment, key, ["", service] if service else [""]), service)

    def exact_row(self, environment: str, service: str, key: str) -> Optional[Row]:
        rows = self.store.get_rows(environment, key, [service])
        return rows[0] if rows else None

    async def wait_for_change(
        self, environment: str, key: str, service: str, after: int, timeout_s: float, client: str = ""
    ) -> Optional[Row]:
        """The resolved row once its version exceeds `after` (a missing key counts as 0); None at the timeout.
        Raises 429 when settings.max_waiting requests already wait, or settings.max_waiting_per_client from
        `client` (its address): each holds a connection and a task, and one client must not take them all."""
        if self.waiting >= self.settings.max_waiting_per_worker:
            self.metrics.waits.labels("refused").inc()
            raise HTTPException(
                status_code=429, headers={"Retry-After": "1"},
                detail=f"{self.settings.max_waiting} requests already wait for a change (CONFIG_MAX_WAITING, "
                       f"shared by {self.settings.workers} worker(s)): retry later, or read without wait_version")
        self.refuse_over_client_cap(client)
        self.waiting += 1
        self.waiting_by_client[client] = self.waiting_by_client.get(client, 0) + 1
        try:
            return await self._wait(environment, key, service, after, timeout_s)
        finally:
            self.waiting -= 1
            self.waiting_by_client[client] -= 1
            if not self.waiting_by_client[client]:
                del self.waiting_by_client[client]  # bounded by the waits in progress, not by every client seen

    def refuse_over_client_cap(self, client: str) -> None:
        """429 when `client` already holds its share of the waits (CONFIG_MAX_WAITING_PER_CLIENT)."""
        if self.waiting_by_client.get(client, 0) < self.settings.max_waiting_per_client_per_worker:
            return
        self.metrics.waits.labels("refused").inc()
        raise HTTPException(
            status_code=429, headers={"Retry-After": "1"},
            detail=f"{self.settings.max_waiting_per_client} requests from this client already wait for a change "
                   f"(CONFIG_MAX_WAITING_PER_CLIENT, shared by {self.settings.workers} worker(s)): retry later, "
                   "or read without wait_version")

    async def _wait(self, environment: str, key: str, service: str, after: int, timeout_s: float) -> Optional[Row]:
        deadline = time.monotonic() + timeout_s
        with self.signal.watching(environment, key) as changed, self.metrics.waiting.track_inprogress():
            while True:
                changed.clear()  # before reading: a change landing after the read still wakes the wait below
                row = await run_in_threadpool(self.lookup, environment, key, service)
                if (row.version if row else 0) > after:
                    return row
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(RECHECK_S, remaining))

    def in_daemon_thread(self, check: Callable[[], object]) -> asyncio.Future:
        """A future of check(), run in a daemon thread: one that hangs holds up neither /health nor the
        process's exit (run_in_threadpool cannot be abandoned, an executor's threads are joined at exit)."""
        loop, future = asyncio.get_running_loop(), asyncio.get_running_loop().create_future()

        def settle(setter: Callable, value) -> None:
            if not future.done():  # not abandoned at the timeout meanwhile
                setter(value)

        def run() -> None:
            try:
                outcome = (future.set_result, check())
            except Exception as error:  # noqa: BLE001 - handed to the waiting coroutine
                outcome = (future.set_exception, error)
            finally:
                self.hanging.release()
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for this any more
                loop.call_soon_threadsafe(settle, *outcome)

        if not self.hanging.acquire(blocking=False):
            future.set_exception(TimeoutError(f"{MAX_HANGING_PROBES} earlier probes have not answered yet"))
            return future
        threading.Thread(target=run, name="health-probe", daemon=True).start()
        return future

    async def probe(self, check: Callable[[], object], request: Request, dependency: str) -> dict:
        """{"status": "healthy", "latency_ms"} or {"status": "unhealthy", "error"}, within HEALTH_TIMEOUT_S even
        when the dependency hangs. The error says where the log has the cause, never the driver's message
        (addresses, roles), which is logged under the request's id."""
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.in_daemon_thread(check), HEALTH_TIMEOUT_S)
        except asyncio.TimeoutError:
            return {"status": "unhealthy", "error": f"no answer within {HEALTH_TIMEOUT_S:g} s"}
        except Exception as error:  # noqa: BLE001 - whatever failed, the dependency is down, and why is logged
            return {"status": "unhealthy", "error": f"unavailable: {log_cause(log, request, dependency, error)}"}
        return {"status": "healthy", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


async def state(request: Request) -> ConfigState:
    return request.app.state.config


def client_address(request: Request) -> str:
    """Who asks, for the per-client cap of long polls: the connection's remote address. Behind a proxy
    every client shares the proxy's: Docker's port publishing (all of the host's callers arrive from the
    network's gateway) and, on swarm, the gateway forwarding the host's ports (steps/harness/swarm.py)."""
    return request.client.host if request.client else ""


def not_found(key: str, environment: str, service: str) -> HTTPException:
    return HTTPException(
        status_code=404, detail=f"no parameter {key} in {environment}" + (f" for service {service}" if service else "")
    )


HOW_TO_SIGN_IN = (
    "configuration writes need HTTP Basic authentication as an editor's Redis ACL user, with its Redis password "
    "(for example curl -u config-editor:$REDIS_PASSWORD_CONFIG_EDITOR); production needs a production editor "
    "(config-editor-production); reads need none"
)
signed_in = basic_sign_in("configuration-service", HOW_TO_SIGN_IN, lambda request: request.app.state.config.sign_ins)


async def editor(caller: Caller = Depends(signed_in)) -> str:
    """The signed-in editor's Redis ACL user: what the history records as the author."""
    return caller.user


def may_write(config: ConfigState, user: str, environment: str) -> None:
    """403 unless `user` may write `environment` (production has editors of its own)."""
    if not config.settings.may_write(user, environment):
        needed = "a production editor" if environment == "production" else "an editor"
        raise HTTPException(status_code=403, detail=f"{user[:64]} may not write {environment}: it takes {needed} "
                                                    "(CONFIG_EDITORS, CONFIG_PRODUCTION_EDITORS)")
