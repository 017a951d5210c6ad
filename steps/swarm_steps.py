"""Steps about what Docker Swarm adds (section W): replicas, their replacement, their discovery."""
from __future__ import annotations

import threading
import time

import pytest
from pytest_bdd import parsers, then, when

from steps.compose_steps import healthcheck_budget
from steps.expect import Mismatches, expect
from steps.probes import Fact, config_api, docker_engine, prometheus_server, registry_api, swarm_engine
from steps.probes.facts import ProbeError
from steps.probes.waiting import poll

# What the clients read while a replica is replaced, and how often.
READ_INTERVAL_S = 0.05
# Prometheus's DNS discovery of the replicas refreshes every 15 s; then a scrape every 5 s.
REPLICA_DISCOVERY_S = 45


def _swarm_only(stack) -> None:
    if not stack.on_swarm:
        pytest.skip("swarm only: run the suite with --stack=swarm")


@then(parsers.parse('the "{first}" and "{second}" services each run at least {least:d} replicas, every one healthy'))
def _replicas_healthy(stack, evidence, first, second, least):
    _swarm_only(stack)
    problems = Mismatches("replicas", "deploy.replicas of the stateless services (steps/harness/swarm_file.py)")
    for service in (first, second):
        fact = evidence.record(swarm_engine.replicas(stack.project, service))
        wanted, tasks = fact.observed["wanted"], fact.observed["tasks"]
        running = [task for task, (state, _) in tasks.items() if state == "running"]
        problems.check(wanted >= least and len(running) == wanted, f"{service}: {least} or more replicas, all running",
                       f"{wanted} wanted, {len(running)} running", fact)
        health = evidence.record(swarm_engine.replica_health(stack.project, service))
        problems.check(len(health.observed) == wanted and set(health.observed.values()) == {"healthy"},
                       f"{service}: every replica's container healthy", health.observed, health)
    problems.raise_any()


@then(parsers.parse('inside the network, every replica of "{first}" answers its health on port {first_port:d}, '
                    'and every replica of "{second}" on port {second_port:d}'))
def _replicas_answer(stack, evidence, first, first_port, second, second_port):
    _swarm_only(stack)
    problems = Mismatches("replicas answering inside the network",
                          "endpoint_mode dnsrr: tasks.<service> lists every running replica")
    for service, port in ((first, first_port), (second, second_port)):
        wanted = evidence.record(swarm_engine.replicas(stack.project, service)).observed["wanted"]
        fact = evidence.record(swarm_engine.replica_answers(stack.settings.network_name, (stack.project, service),
                                                            service, port, "/health"))
        statuses = fact.observed
        problems.check(len(statuses) == wanted and set(statuses.values()) == {200},
                       f"{service}: {wanted} replicas answering 200", statuses, fact)
    problems.raise_any()


@then("the replicas of each service are spread over as many of the swarm's nodes as they can be")
def _replicas_spread(stack, evidence):
    _swarm_only(stack)
    nodes = evidence.record(swarm_engine.nodes()).observed
    problems = Mismatches("replicas over the nodes", "placement preference spread on node.id")
    for service in swarm_engine.replicated_services(stack.project):
        fact = evidence.record(swarm_engine.replicas(stack.project, service))
        used = {node for _, node in fact.observed["tasks"].values()}
        wanted = min(fact.observed["wanted"], len(nodes))
        problems.check(len(used) == wanted, f"{service} on {wanted} node(s) of {len(nodes)}", sorted(used), fact)
    problems.raise_any()


class Readers:
    """Clients reading discovery (the registry's service list) and configuration (one parameter)
    through the stack's 127.0.0.1 ports, one after another, until stopped; every failure kept with
    the moment its read started (time.monotonic())."""

    def __init__(self, stack):
        self.stack, self.stop_event = stack, threading.Event()
        self.reads, self.failures = 0, []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _read_once(self) -> None:
        for service, read in (("service-registry", lambda: registry_api.services(self.stack.registry_port())),
                              ("configuration-service",
                               lambda: config_api.parameters(self.stack.config_port(), limit=1))):
            started = time.monotonic()
            try:
                status = read().observed["status"]
                if status != 200:
                    self.failures.append((service, started, f"HTTP {status}"))
            except ProbeError as error:
                self.failures.append((service, started, str(error)))
            self.reads += 1

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self._read_once()
            self.stop_event.wait(READ_INTERVAL_S)

    def start(self) -> "Readers":
        self._read_once()
        if self.failures:
            raise AssertionError(f"reads failed before any replica was killed: {self.failures}")
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)


PROGRAMS = {"service-registry": "python3", "configuration-service": "python3"}


@when(parsers.parse('the program of one replica of "{first}" and of one replica of "{second}" is killed, while '
                    'clients read discovery and configuration'), target_fixture="replaced")
def _kill_replicas(stack, evidence, first, second, request):
    _swarm_only(stack)
    readers = Readers(stack).start()
    request.addfinalizer(readers.stop)
    killed = {}
    for service in (first, second):
        before = evidence.record(swarm_engine.replica_health(stack.project, service)).observed
        target = docker_engine.container(stack.project, service)
        pids = docker_engine.kill_process(stack.project, service, PROGRAMS[service])
        # Until its processes are gone, the killed replica's listening socket still takes connections
        # (the kernel completes them): those die with it. From then on, only the other replica answers.
        target.reload()
        gone = poll(lambda t=target: t.reload() or t.status != "running", timeout=10, interval=0.01)
        gone_at = time.monotonic()
        evidence.record(Fact(f"kill -KILL {' '.join(map(str, pids))} ({PROGRAMS[service]}); docker inspect "
                             ".State.Status until not running", target.name, "gone" if gone else "still running"))
        killed[service] = {"container": target.name, "before": before, "at": gone_at}
    return {"killed": killed, "readers": readers}


def _replaced_and_healthy(stack, service: str, killed: dict) -> dict | None:
    """The replicas' health once the killed one is gone and a new one is healthy beside the others."""
    health = swarm_engine.replica_health(stack.project, service).observed
    fresh = set(health) - set(killed["before"])
    wanted = swarm_engine.replicas(stack.project, service).observed["wanted"]
    done = killed["container"] not in health and fresh and len(health) == wanted and set(health.values()) == {"healthy"}
    return health if done else None


@then("swarm replaces each killed replica with a new healthy one within its healthcheck budget")
def _replaced(stack, evidence, replaced):
    problems = Mismatches("killed replicas replaced", "deploy.restart_policy condition any")
    for service, killed in replaced["killed"].items():
        budget = healthcheck_budget(stack, service) + 10  # swarm's restart delay (5 s) and scheduling
        after = poll(lambda s=service, k=killed: _replaced_and_healthy(stack, s, k), timeout=budget, interval=0.25)
        shown = after or swarm_engine.replica_health(stack.project, service).observed
        evidence.record(Fact("docker ps --filter label=com.docker.swarm.service.name (health)", service, shown))
        problems.check(after is not None, f"{service}: {killed['container']} replaced by a new healthy replica "
                       f"within {budget:.0f} s", shown, None)
    problems.raise_any()


@then("every read of the discovery and configuration APIs in the meantime was answered")
def _served_throughout(stack, evidence, replaced):
    readers = replaced["readers"]
    readers.stop()
    # A read that reached the killed replica before it was gone dies with it; every read that started
    # after it was gone must be answered by the other replica.
    killed_at = {service: killed["at"] for service, killed in replaced["killed"].items()}
    in_flight = [f"{service}: {error}" for service, started, error in readers.failures if started < killed_at[service]]
    after = [f"{service}, {started - killed_at[service]:.2f} s after the replica was gone: {error}"
             for service, started, error in readers.failures if started >= killed_at[service]]
    fact = evidence.record(Fact(f"GET registry services and configuration parameters every {READ_INTERVAL_S} s "
                                "through 127.0.0.1", "host",
                                {"reads": readers.reads, "lost with the dying replica": in_flight,
                                 "failed after it was gone": after}))
    expect(readers.reads > 0 and not after, "reads while replicas were replaced",
           "every read started after the killed replica was gone answered", fact.observed, fact,
           "a replica that dies must leave discovery (tasks.<service>) before clients reach it")


def _replica_targets(port: int, job: str) -> tuple[Fact, list]:
    fact = prometheus_server.targets(port)
    return fact, [(t["url"], t["health"]) for t in fact.observed if t["job"] == job]


def _replica_targets_up(port: int, job: str, wanted: int) -> tuple | None:
    fact, found = _replica_targets(port, job)
    return (fact, found) if len(found) == wanted and {health for _, health in found} == {"up"} else None


@then(parsers.parse('Prometheus scrapes the jobs "{first}" and "{second}", one target up for each replica'))
def _replicas_scraped(stack, evidence, first, second):
    _swarm_only(stack)
    problems = Mismatches("Prometheus's targets of the replicas", "dns_sd_configs on tasks.<service> "
                          "(infra/prometheus/prometheus.yml)")
    port = stack.settings.port("PROMETHEUS_HOST_PORT")
    for job in (first, second):
        service = job.removesuffix("-replicas")
        wanted = evidence.record(swarm_engine.replicas(stack.project, service)).observed["wanted"]

        up = poll(lambda j=job, w=wanted: _replica_targets_up(port, j, w), timeout=REPLICA_DISCOVERY_S, interval=1,
                  transient=(ProbeError,))
        fact, found = up or _replica_targets(port, job)
        evidence.record(fact)
        problems.check(up is not None, f"{job}: {wanted} targets up (waited up to {REPLICA_DISCOVERY_S} s)", found,
                       fact)
    problems.raise_any()
