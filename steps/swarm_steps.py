"""Steps about what Docker Swarm adds (section W): replicas, their replacement, their discovery."""
from __future__ import annotations

import threading
import time

import pytest
from docker.errors import DockerException
from pytest_bdd import parsers, then, when

from steps.expect import Mismatches, expect
from steps.harness import interventions, scratch
from steps.probes import Fact, config_api, docker_engine, prometheus_server, registry_api, swarm_engine
from steps.probes.facts import ProbeError
from steps.probes.waiting import poll
from steps.replicas import every_replica_answers
from steps.service_checks import healthcheck_budget

# What the clients read while a replica is replaced, and how often.
READ_INTERVAL_S = 0.05
# How often the replicas running are counted during a rolling update.
SAMPLE_INTERVAL_S = 0.25
# The reads the clients make, as each replica answers them; and how long the replicas may take to
# all answer them before they are disturbed.
REPLICA_READS = {"service-registry": "/api/v1/services", "configuration-service": f"{config_api.API}?limit=1"}
SETTLE_S = 30
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
        fact = evidence.record(scratch.replica_answers(stack.settings.network_name, (stack.project, service),
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


class Repeating:
    """Work done once every `interval` s in a background thread, from start() until stop()."""

    interval = 1.0

    def __init__(self):
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def once(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.once()
            self.stop_event.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)


class Readers(Repeating):
    """Clients reading discovery (the registry's service list) and configuration (one parameter)
    through the stack's 127.0.0.1 ports, one after another, until stopped; every failure kept with
    the moment its read started (time.monotonic())."""

    interval = READ_INTERVAL_S

    def __init__(self, stack):
        super().__init__()
        self.stack = stack
        self.reads, self.failures = 0, []

    def once(self) -> None:
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

    def start(self) -> "Readers":
        """Once every replica answers both reads: a replica still reconnecting after an earlier
        scenario's outage (each does on its own) is not this scenario's failure."""
        for service, path in REPLICA_READS.items():
            settled, fact = every_replica_answers(self.stack, service, path, timeout=SETTLE_S)
            expect(settled, f"before the replicas were disturbed, every replica of {service}", f"200 to {path}",
                   fact.observed, fact)
        self.started = time.monotonic()
        return super().start()


PROGRAMS = {"service-registry": "python3", "configuration-service": "python3"}


@when(parsers.parse('the program of one replica of "{first}" and of one replica of "{second}" is killed, while '
                    'clients read discovery and configuration'), target_fixture="disturbed")
def _kill_replicas(stack, evidence, first, second, request):
    _swarm_only(stack)
    readers = Readers(stack).start()
    request.addfinalizer(readers.stop)
    killed = {}
    for service in (first, second):
        before = evidence.record(swarm_engine.replica_health(stack.project, service)).observed
        target = docker_engine.container(stack.project, service)
        pids = interventions.kill_process(stack.project, service, PROGRAMS[service])
        # Until its processes are gone, the killed replica's listening socket still takes connections
        # (the kernel completes them): those die with it. From then on, only the other replica answers.
        target.reload()
        gone = poll(lambda t=target: t.reload() or t.status != "running", timeout=10, interval=0.01)
        gone_at = time.monotonic()
        evidence.record(Fact(f"kill -KILL {' '.join(map(str, pids))} ({PROGRAMS[service]}); docker inspect "
                             ".State.Status until not running", target.name, "gone" if gone else "still running"))
        killed[service] = {"container": target.name, "before": before, "at": gone_at}
    # A read that reached a killed replica before it was gone dies with it: excused.
    return {"killed": killed, "readers": readers, "excused_until": {s: k["at"] for s, k in killed.items()}}


def _replaced_and_healthy(stack, service: str, killed: dict) -> dict | None:
    """The replicas' health once the killed one is gone and a new one is healthy beside the others."""
    health = swarm_engine.replica_health(stack.project, service).observed
    fresh = set(health) - set(killed["before"])
    wanted = swarm_engine.replicas(stack.project, service).observed["wanted"]
    done = killed["container"] not in health and fresh and len(health) == wanted and set(health.values()) == {"healthy"}
    return health if done else None


@then("swarm replaces each killed replica with a new healthy one within its healthcheck budget")
def _replaced(stack, evidence, disturbed):
    problems = Mismatches("killed replicas replaced", "deploy.restart_policy condition any")
    killed = disturbed["killed"]
    # Swarm's restart delay (5 s) and scheduling on top of each service's healthcheck budget; the
    # services are replaced side by side, so they are waited for together, each within its own.
    budgets = {service: healthcheck_budget(stack, service) + 10 for service in killed}
    started, replaced = time.monotonic(), {}

    def all_replaced():
        for service in set(killed) - set(replaced):
            if time.monotonic() - started <= budgets[service]:
                found = _replaced_and_healthy(stack, service, killed[service])
                if found is not None:
                    replaced[service] = found
        return len(replaced) == len(killed) or time.monotonic() - started > max(budgets.values())

    poll(all_replaced, timeout=max(budgets.values()) + 1, interval=0.25)
    for service, budget in budgets.items():
        shown = replaced.get(service) or swarm_engine.replica_health(stack.project, service).observed
        evidence.record(Fact("docker ps --filter label=com.docker.swarm.service.name (health)", service, shown))
        problems.check(service in replaced, f"{service}: {killed[service]['container']} replaced by a new healthy "
                       f"replica within {budget:.0f} s", shown, None)
    problems.raise_any()


@then("every read of the discovery and configuration APIs in the meantime was answered")
def _served_throughout(stack, evidence, disturbed):
    readers = disturbed["readers"]
    readers.stop()
    # Reads started before a service's excuse ends (the moment its killed replica was gone) may
    # fail; every other read must be answered.
    excused_until = disturbed.get("excused_until", {})
    excused, failed = [], []
    for service, started, error in readers.failures:
        until = excused_until.get(service)
        if until is not None and started < until:
            excused.append(f"{service}: {error}")
        else:
            failed.append(f"{service}, {started - readers.started:.2f} s after the reads began: {error}")
    fact = evidence.record(Fact(f"GET registry services and configuration parameters every {READ_INTERVAL_S} s "
                                "through 127.0.0.1", "host",
                                {"reads": readers.reads, "lost with a killed replica": excused, "failed": failed}))
    expect(readers.reads > 0 and not failed, "reads while replicas were replaced",
           "every read answered (but those that reached a killed replica before it was gone)", fact.observed, fact,
           "a replica that stops must leave discovery (tasks.<service>) before clients reach it")


class Capacity(Repeating):
    """How many replicas of each service swarm counts running (for a service with a healthcheck:
    healthy) among the tasks it wants running, sampled every SAMPLE_INTERVAL_S until stopped; the
    lowest count of each kept."""

    interval = SAMPLE_INTERVAL_S

    def __init__(self, stack, services: tuple):
        super().__init__()
        self.stack, self.services = stack, services
        self.lowest = {service: None for service in services}
        self.samples, self.errors = 0, []

    def once(self) -> None:
        for service in self.services:
            try:
                tasks = swarm_engine.replicas(self.stack.project, service).observed["tasks"]
            except (ProbeError, DockerException) as error:
                self.errors.append(f"{service}: {error}")
                continue
            running = sum(1 for state, _ in tasks.values() if state == "running")
            lowest = self.lowest[service]
            self.lowest[service] = running if lowest is None else min(lowest, running)
        self.samples += 1


def _update_budget(stack, service: str) -> float:
    """Seconds a rolling update of the service may take: each replica started and healthy in turn,
    then swarm's monitoring period before it calls the update done."""
    config = swarm_engine.update_config(stack.project, service).observed
    wanted = swarm_engine.replicas(stack.project, service).observed["wanted"]
    monitor_s = (config.get("Monitor") or 0) / 1e9
    return wanted * (healthcheck_budget(stack, service) + 10) + monitor_s + 10


def _update_state(stack, service: str) -> tuple[dict, bool]:
    """Where the service's update stands, its tasks and their containers' health, and whether every
    replica it wants is a running task with a healthy container."""
    status = swarm_engine.update_status(stack.project, service).observed
    replicas = swarm_engine.replicas(stack.project, service).observed
    health = swarm_engine.replica_health(stack.project, service).observed
    tasks = replicas["tasks"]
    whole = (len(tasks) == replicas["wanted"] and {state for state, _ in tasks.values()} == {"running"}
             and len(health) == replicas["wanted"] and set(health.values()) == {"healthy"})
    return {"update": status, "tasks": {task: state for task, (state, _) in tasks.items()}, "health": health}, whole


def _update_finished(stack, service: str, state: str, before: set) -> dict | None:
    """The service once its update reached `state` and every replica is a new (not in `before`)
    running task with a healthy container."""
    observed, whole = _update_state(stack, service)
    done = observed["update"]["state"] == state and not set(observed["tasks"]) & before and whole
    return observed if done else None


@when(parsers.parse('every replica of "{first}" and of "{second}" is replaced by a rolling update, while clients '
                    'read discovery and configuration'), target_fixture="disturbed")
def _rolling_update(stack, evidence, first, second, request):
    _swarm_only(stack)
    services = (first, second)
    before = {}
    for service in services:
        evidence.record(swarm_engine.update_config(stack.project, service))
        before[service] = set(evidence.record(swarm_engine.replicas(stack.project, service)).observed["tasks"])
    readers = Readers(stack).start()
    request.addfinalizer(readers.stop)
    capacity = Capacity(stack, services).start()
    request.addfinalizer(capacity.stop)
    for service in services:
        interventions.force_update(stack.project, service)
    evidence.record(Fact("docker service update --force", ", ".join(services), "update started"))
    return {"readers": readers, "capacity": capacity, "before": before}


@then("swarm completes each update, every replica replaced by a new healthy one")
def _update_completed(stack, evidence, disturbed):
    problems = Mismatches("rolling updates", "deploy.update_config (steps/harness/swarm_file.py)")
    for service, before in disturbed["before"].items():
        budget = _update_budget(stack, service)
        done = poll(lambda s=service, b=before: _update_finished(stack, s, "completed", b), timeout=budget,
                    interval=0.5, transient=(ProbeError, DockerException))
        shown = done or swarm_engine.update_status(stack.project, service).observed
        evidence.record(Fact("docker service inspect .UpdateStatus; docker service ps; docker ps (health)", service,
                             shown))
        problems.check(done is not None, f"{service}: update completed within {budget:.0f} s, every replica new "
                       "and healthy", shown, None)
    problems.raise_any()


@then("throughout each update, no service had fewer healthy replicas than it declares")
def _capacity_kept(stack, evidence, disturbed):
    capacity = disturbed["capacity"]
    capacity.stop()
    wanted = {service: swarm_engine.replicas(stack.project, service).observed["wanted"]
              for service in capacity.services}
    fact = evidence.record(Fact(f"docker service ps every {SAMPLE_INTERVAL_S} s during the updates (tasks running; "
                                "healthy for a service with a healthcheck)", ", ".join(capacity.services),
                                {"samples": capacity.samples, "lowest running": capacity.lowest,
                                 "declared": wanted, "errors": capacity.errors[:5]}))
    short = {service: lowest for service, lowest in capacity.lowest.items()
             if lowest is None or lowest < wanted[service]}
    expect(capacity.samples > 0 and not short, "replicas running during the updates",
           f"never fewer than declared ({wanted})", fact.observed, fact,
           'update_config order "start-first": a new replica healthy before an old one stops')


# A version that never gets healthy: its healthcheck fails at once.
FAILING_HEALTHCHECK = {"Test": ["CMD-SHELL", "exit 1"], "Interval": 1_000_000_000, "Timeout": 1_000_000_000,
                       "Retries": 1, "StartPeriod": 0}


def _restore_healthcheck(stack, service: str, previous: dict) -> None:
    """Puts the declared healthcheck back when the scenario left the failing one in the spec (swarm
    did not roll back) and waits for the service to be whole again."""
    if swarm_engine.healthcheck(stack.project, service).observed == previous:
        return
    interventions.update_healthcheck(stack.project, service, previous)
    poll(lambda: _update_finished(stack, service, "completed", set()), timeout=_update_budget(stack, service),
         interval=0.5, transient=(ProbeError, DockerException))


@when(parsers.parse('"{service}" is updated to a version that never gets healthy, while clients read discovery and '
                    'configuration'), target_fixture="disturbed")
def _failing_update(stack, evidence, service, request):
    _swarm_only(stack)
    previous = evidence.record(swarm_engine.healthcheck(stack.project, service)).observed
    evidence.record(swarm_engine.update_config(stack.project, service))
    before = set(evidence.record(swarm_engine.replicas(stack.project, service)).observed["tasks"])
    readers = Readers(stack).start()
    request.addfinalizer(readers.stop)
    request.addfinalizer(lambda: _restore_healthcheck(stack, service, previous))
    interventions.update_healthcheck(stack.project, service, FAILING_HEALTHCHECK)
    evidence.record(Fact("docker service update --health-cmd 'exit 1' --health-retries 1", service, "update started"))
    return {"readers": readers, "service": service, "previous": previous, "before": before}


# Where swarm leaves an update for good: done, given up on (paused), or undone.
FINAL_UPDATE_STATES = {"completed", "paused", "rollback_completed", "rollback_paused"}


def _update_settled(stack, service: str, previous: dict) -> dict | None:
    """The service once its update reached a final state: with "rollback_completed", only once every
    replica runs the previous spec, healthy."""
    observed, replicas_whole = _update_state(stack, service)
    restored = swarm_engine.healthcheck(stack.project, service).observed == previous
    observed["previous healthcheck in the spec"] = restored
    state = observed["update"]["state"]
    whole = restored and replicas_whole
    settled = state in FINAL_UPDATE_STATES and (state != "rollback_completed" or whole)
    return observed | {"rolled back, whole": state == "rollback_completed" and whole} if settled else None


@then(parsers.parse('swarm rolls the update back, and every replica of "{service}" runs the previous version, '
                    'healthy'))
def _update_rolled_back(stack, evidence, disturbed, service):
    # The failing version is found out within seconds; then one replica of the previous one started.
    budget = healthcheck_budget(stack, service) + 30
    settled = poll(lambda: _update_settled(stack, service, disturbed["previous"]), timeout=budget, interval=0.5,
                   transient=(ProbeError, DockerException))
    shown = settled or {"update": swarm_engine.update_status(stack.project, service).observed}
    fact = evidence.record(Fact("docker service inspect .UpdateStatus .Spec; docker service ps; docker ps (health)",
                                service, shown))
    expect(settled is not None and settled["rolled back, whole"], "a failing update",
           f"rolled back within {budget:.0f} s, every replica running the previous spec, healthy", shown, fact,
           'update_config failure_action "rollback"')


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
