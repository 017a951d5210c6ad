"""The replicas of a service on swarm, each asked by its own address: what the step modules check
when an answer through the gateway (from whichever replica) says nothing of the others."""
from __future__ import annotations

from steps.harness import scratch
from steps.probes import Fact, compose_model, swarm_engine
from steps.probes.waiting import poll


def every_replica_answers(stack, service: str, path: str, timeout: float) -> tuple[bool, Fact]:
    """Poll, at most `timeout` s, until every replica of `service` answers GET `path` with 200, each
    reached by its own address inside the network (through the gateway a client reaches one of them,
    whichever): (whether they all did, the last observation)."""
    (_, _, port), *_ = compose_model.declared_ports(stack.compose.config)[service]
    wanted = swarm_engine.replicas(stack.project, service).observed["wanted"]
    last = []

    def all_answer() -> bool:
        last[:] = [scratch.replica_answers(stack.settings.network_name, (stack.project, service), service,
                                           port, path)]
        return len(last[0].observed) == wanted and set(last[0].observed.values()) == {200}

    return bool(poll(all_answer, timeout=timeout, interval=0.5)), last[0]
