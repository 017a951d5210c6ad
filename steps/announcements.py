"""How long the services' reads may take to agree on a change made through them.

Both services keep read answers in memory and forget them when a change is announced on Redis
(infra/servicekit/servicekit/readcache.py). The writer announces before it answers, and each worker
reads its announcements before it answers a read, so the next read sees the change; but Redis
writes the writer's reply and another worker's message one after the other, and on a loaded machine
the message can reach that worker after the client's next read does (a scheduling delay: seen with
three stacks on two cores, and on swarm, where the next read may reach another replica). A worker
that never forgets keeps the old answer for 1 s (servicekit.readcache.MAX_AGE_S) and still fails."""
from __future__ import annotations

from typing import Callable

from steps.probes import Fact
from steps.probes.waiting import poll

ANNOUNCEMENT_DELAY_S = 0.3


def first_read_that_agrees(read: Callable[[], Fact], agrees: Callable[[Fact], bool]) -> Fact:
    """The read right after a change: the first of `read` that `agrees` within ANNOUNCEMENT_DELAY_S,
    else the last one."""
    last: list = []
    poll(lambda: last.append(read()) or agrees(last[-1]), timeout=ANNOUNCEMENT_DELAY_S, interval=0.02)
    return last[-1]
