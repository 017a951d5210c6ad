"""Signing callers in with HTTP Basic as Redis ACL users: Redis checks the password (AUTH, which
compares in constant time), so a service keeps no secret of its own, and its ACL decides what the
user may touch. Both services ask it of every write."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable, NamedTuple, Optional

import redis
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.concurrency import run_in_threadpool


class Caller(NamedTuple):
    """A signed-in caller: its Redis ACL user, and a Redis client signed in as it."""

    user: str
    client: redis.Redis


class RedisSignIns:
    """Redis clients signed in as callers: one per (user, password digest), the last `size` used
    kept, so a service's next writes cost no new sign-in. Failed sign-ins are not kept."""

    def __init__(self, connect: Callable[[str, str], redis.Redis], size: int = 32):
        self.connect, self.size = connect, size
        self.clients: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def kept(self, user: str, password: str) -> Optional[redis.Redis]:
        """The client already signed in as `user` with this password, if one is kept (no I/O)."""
        digest = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self.lock:
            client = self.clients.get(digest)
            if client is not None:
                self.clients.move_to_end(digest)
            return client

    def client_for(self, user: str, password: str) -> redis.Redis:
        """A client signed in as `user`; redis.AuthenticationError when Redis refuses the password."""
        client = self.kept(user, password)
        if client is not None:
            return client
        digest = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        client = self.connect(user, password)
        try:
            client.ping()  # signs in: a wrong user or password raises redis.AuthenticationError here
        except BaseException:
            client.close()
            raise
        with self.lock:
            self.clients[digest] = client
            while len(self.clients) > self.size:
                _, evicted = self.clients.popitem(last=False)
                evicted.close()
        return client


def basic_sign_in(realm: str, how_to: str, sign_ins_of: Callable[[Request], RedisSignIns]):
    """A FastAPI dependency giving the Caller signed in with HTTP Basic; 401 with a Basic challenge
    and `how_to` when there are no credentials or Redis refuses them."""
    basic = HTTPBasic(auto_error=False, realm=realm,
                      description="A Redis ACL user and its password, checked by Redis itself.")
    challenge = {"WWW-Authenticate": f'Basic realm="{realm}"'}

    async def signed_in(request: Request, credentials: Optional[HTTPBasicCredentials] = Depends(basic)) -> Caller:
        # async: a caller already signed in costs no thread; a new sign-in (a round trip) runs in one.
        if credentials is None:
            raise HTTPException(status_code=401, detail=how_to, headers=challenge)
        user, password, sign_ins = credentials.username, credentials.password, sign_ins_of(request)
        try:
            client = sign_ins.kept(user, password) or await run_in_threadpool(sign_ins.client_for, user, password)
            return Caller(user, client)
        except redis.AuthenticationError:
            raise HTTPException(status_code=401, headers=challenge,
                                detail=f"Redis refused user {credentials.username[:64]!r} with this password: "
                                       + how_to) from None

    return signed_in
