"""Steps about health checks and connection handling (section 5)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pytest_bdd import parsers, then, when

from steps.expect import Mismatches, expect
from steps.harness import interventions, scratch
from steps.probes import (
    Fact,
    ProbeError,
    compose_model,
    config_api,
    container_exec,
    container_state,
    postgres_server,
    redis_server,
    registry_api,
)
from steps.probes.waiting import poll
from steps.replicas import every_replica_answers
from steps.service_checks import check_connections_by_name, check_every_service

ROOT = Path(__file__).resolve().parents[1]
CLIENT_TIMEOUT_S = 2


@then(parsers.parse('the "{service}" container runs the healthcheck docker-compose.yml declares'))
def _healthcheck_as_declared(stack, evidence, service):
    declared = compose_model.declared_healthcheck(stack.compose.config, service)
    fact = evidence.record(container_state.healthcheck_config(stack.project, service))
    expect(fact.observed == declared, f"{service} healthcheck", declared, fact.observed, fact,
           "recreate the container after changing docker-compose.yml")


@then(parsers.parse('the "{service}" healthcheck fails where no server is running'))
def _healthcheck_can_fail(stack, evidence, service):
    fact = evidence.record(scratch.run_healthcheck_without_server(stack.project, service))
    expect(fact.observed.exit_code != 0, f"{service} healthcheck without a server", "a non-zero exit",
           fact.observed, fact, "a healthcheck that cannot fail proves nothing (exit 0, `|| true`)")


@then("every healthcheck gives up after at most 5 s, well within its interval")
def _healthcheck_timeouts(stack, evidence):
    problems = Mismatches("healthcheck timeouts", "set healthcheck.timeout, e.g. 3s")
    for service in stack.services:
        fact = evidence.record(container_state.healthcheck_config(stack.project, service))
        timeout, interval = fact.observed["timeout"], fact.observed["interval"]
        problems.check(0 < timeout <= 5 and timeout < interval, f"{service}: 0 < timeout <= 5 s and < interval",
                       {"timeout": timeout, "interval": interval}, fact)
    problems.raise_any()


@when(parsers.parse('the "{first}" and "{second}" containers are paused'), target_fixture="paused")
def _pause(stack, evidence, request, first, second):
    before = {}
    for service in (first, second):
        before[service] = evidence.record(container_state.state(stack.project, service)).observed
        # Never leave a paused container behind, whatever happens next.
        request.addfinalizer(lambda service=service: _unpause_quietly(stack.project, service))
        interventions.pause(stack.project, service)
        evidence.record(Fact(f"docker pause {service}", stack.project, "paused"))
    return before


def _unpause_quietly(project: str, service: str) -> None:
    try:
        interventions.unpause(project, service)
    except Exception:  # noqa: BLE001 - already unpaused
        pass


@then(parsers.parse("a Redis client gives up within {limit:d} s with a timeout error"))
def _redis_times_out(stack, evidence, limit):
    fact = evidence.record(redis_server.timed_ping(stack.redis_port(), "healthcheck",
                                                   stack.redis_password("healthcheck"), CLIENT_TIMEOUT_S))
    observed = fact.observed
    expect(observed["seconds"] <= limit and "Timeout" in observed["answer"], "Redis client against a paused server",
           f"a timeout error within {limit} s", observed, fact)


@then(parsers.parse("a PostgreSQL client gives up within {limit:d} s with a timeout error"))
def _postgres_times_out(stack, evidence, limit):
    fact = evidence.record(postgres_server.timed_login(stack.postgres_port(), "monitor",
                                                       stack.postgres_password("monitor"), stack.database,
                                                       CLIENT_TIMEOUT_S))
    observed = fact.observed
    expect(observed["seconds"] <= limit and "timeout" in observed["answer"].lower(),
           "PostgreSQL client against a paused server", f"a timeout error within {limit} s", observed, fact)


@then(parsers.parse("the registry's health answers 503 naming Redis within {limit:d} s, without hanging"))
def _registry_gives_up(stack, evidence, limit):
    # The registry is the stack's own client of Redis: it must time out too, not hang with it.
    started = time.monotonic()
    try:
        fact = registry_api.health(stack.registry_port())
        observed = {"status": fact.observed["status"], "body": fact.observed["body"]}
    except ProbeError as error:
        fact, observed = None, {"status": None, "body": str(error)}
    observed["seconds"] = round(time.monotonic() - started, 2)
    fact = evidence.record(fact or Fact("GET /health", f"127.0.0.1:{stack.registry_port()}", observed))
    expect(observed["status"] == 503 and "redis" in str(observed["body"]).lower() and observed["seconds"] <= limit,
           "registry /health with Redis paused", f"503 naming Redis within {limit} s", observed, fact,
           "give the registry's Redis client a socket timeout")


@when("the paused containers are unpaused")
def _unpause(stack, evidence, paused):
    for service in paused:
        interventions.unpause(stack.project, service)
        evidence.record(Fact(f"docker unpause {service}", stack.project, "unpaused"))


DEPENDENTS_BACK_S = 10  # the registry and the configuration service: their next probe of the databases


def _healthy_in_a_row(health, times: int, timeout: float) -> list:
    """Ask `health()` until it answered 200 `times` times in a row or `timeout` s passed; every answer."""
    answers = []
    poll(lambda: answers.append(health()) or (len(answers) >= times and all(
        a.observed["status"] == 200 for a in answers[-times:])), timeout=timeout, interval=0.1)
    return answers


@then("Redis and PostgreSQL answer again and Docker reports them healthy, without a restart, and the services "
      "that use them are healthy again")
def _answers_again(stack, evidence, paused):
    # Docker marks a container unhealthy while it is paused and only says healthy again after its
    # next passing check, so the wait is bounded by the healthcheck's interval and timeout.
    answers = {
        "redis": lambda: redis_server.timed_ping(stack.redis_port(), "healthcheck",
                                                 stack.redis_password("healthcheck"), CLIENT_TIMEOUT_S),
        "postgres": lambda: postgres_server.timed_login(stack.postgres_port(), "monitor",
                                                        stack.postgres_password("monitor"), stack.database,
                                                        CLIENT_TIMEOUT_S),
    }
    problems = Mismatches("services after unpause", "a paused service must come back by itself")
    budget = max(container_state.healthcheck_config(stack.project, s).observed["interval"] for s in paused) + 10
    for service in paused:
        answered = answers[service]()
        evidence.record(answered)
        problems.check(answered.observed["answer"] in ("PONG", "ok"), f"{service} answers", answered.observed, answered)
    healthy = poll(lambda: all(container_state.health(stack.project, s).observed == "healthy" for s in paused),
                   timeout=budget, interval=0.5)
    problems.check(bool(healthy), f"healthy within {budget:.0f} s", "not all healthy (Docker health)")
    for service, before in paused.items():
        after = evidence.record(container_state.state(stack.project, service))
        same = all(after.observed[k] == before[k] for k in ("started_at", "restart_count"))
        problems.check(same and after.observed["health"] == "healthy", f"{service}: the same run, healthy",
                       after.observed, after)
    # Their clients' connections came back too: each worker of each dependent answers /health 200
    # (several answers in a row, since a worker process takes the request it wins).
    for name, health in (("service-registry", lambda: registry_api.health(stack.registry_port())),
                         ("configuration-service", lambda: config_api.health(stack.config_port()))):
        answers = _healthy_in_a_row(health, 5, DEPENDENTS_BACK_S)
        evidence.record(answers[-1])
        problems.check(all(a.observed["status"] == 200 for a in answers[-5:]) and len(answers) >= 5,
                       f"{name}: /health 200 five times in a row within {DEPENDENTS_BACK_S} s",
                       [a.observed["status"] for a in answers[-5:]], answers[-1])
        if stack.on_swarm:  # through the gateway the answers come from any replica: each one too
            answered, fact = every_replica_answers(stack, name, "/health", timeout=DEPENDENTS_BACK_S)
            problems.check(answered, f"{name}: every replica's /health 200 within {DEPENDENTS_BACK_S} s",
                           evidence.record(fact).observed, fact)
    problems.raise_any()


@then("every healthcheck probes every 10 to 30 s once the service is healthy")
def _intervals(stack, evidence):
    check_every_service(stack, evidence, "healthcheck intervals",
                        "interval: 30s keeps 2 cores quiet, and 10 s notices trouble soon",
                        container_state.healthcheck_config,
                        lambda service, config: (10 <= config["interval"] <= 30,
                                                 f"{service}: 10 s <= interval <= 30 s", f"{config['interval']} s"))


@then("every healthcheck probes at least every 1 s during a start period of at least 5 s")
def _start_intervals(stack, evidence):
    def judge(service, config):
        observed = {k: config[k] for k in ("start_interval", "start_period")}
        return (0 < observed["start_interval"] <= 1 and observed["start_period"] >= 5,
                f"{service}: start_interval <= 1 s, start_period >= 5 s", observed)

    check_every_service(stack, evidence, "healthcheck start", "start_period and start_interval make `up --wait` quick",
                        container_state.healthcheck_config, judge)


def _validate(stack, evidence, tmp_path, select: str) -> Fact:
    """Run the operator's validate command against this stack, as an operator would."""
    env_values = {k: v for k, v in stack.settings.values.items()
                  if k.startswith("TSE_") or k.endswith("_HOST_PORT")}
    command = [sys.executable, str(ROOT / "infra/host/stackctl.py"), f"--project-name={stack.project}",
               f"--env-file={stack.settings.env_file}", "validate", f"--reports-dir={tmp_path}", f"--select={select}"]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env_values}, capture_output=True, text=True,
                            timeout=600)
    output = (result.stdout + result.stderr).strip()
    return evidence.record(Fact(f"stackctl validate --select {select}", stack.project, {"exit_code": result.returncode},
                                raw=output[-4000:]))


@then(parsers.parse('the operator\'s validate command passes for the "{select}" scenarios'))
def _validate_passes(stack, evidence, tmp_path, select):
    fact = _validate(stack, evidence, tmp_path / "healthy", select)
    expect(fact.observed["exit_code"] == 0, "stackctl validate on a healthy stack", "exit 0",
           f"exit {fact.observed['exit_code']}:\n{fact.raw[-1500:]}", fact)


@when(parsers.parse('the "{service}" healthcheck starts failing'))
def _break_healthcheck(stack, evidence, request, service):
    port, admin = stack.redis_port(), stack.redis_password("admin")
    evidence.record(redis_server.run(port, "admin", admin, "ACL", "SETUSER", "healthcheck", "resetpass",
                                     ">acceptance-broken-on-purpose"))
    # ACL LOAD puts users.acl back as it is on disk.
    request.addfinalizer(lambda: redis_server.run(port, "admin", admin, "ACL", "LOAD"))
    fact = evidence.record(container_exec.run_healthcheck(stack.project, service))
    expect(fact.observed.exit_code != 0, f"{service} healthcheck after its password changed", "failing",
           fact.observed, fact)


@then(parsers.parse('the operator\'s validate command fails for the "{select}" scenarios, naming "{service}"'))
def _validate_fails(stack, evidence, tmp_path, select, service):
    fact = _validate(stack, evidence, tmp_path / "broken", select)
    failed_lines = [line for line in fact.raw.splitlines() if line.startswith("FAILED")]
    # A FAILED line shows only the start of its scenario's message, which names the first of the
    # failing services (another may fail too: a replica still reconnecting); its report has them all.
    expect(fact.observed["exit_code"] != 0 and (any(service in line for line in failed_lines)
                                                or f"{service} healthcheck" in _failures_reported(tmp_path / "broken")),
           "stackctl validate with a failing healthcheck", f"a non-zero exit and a failure naming {service}",
           f"exit {fact.observed['exit_code']}; FAILED lines: {failed_lines}", fact)


def _failures_reported(reports: Path) -> str:
    """The error messages of the failed steps in a validate run's Cucumber report."""
    try:
        features = json.loads((reports / "cucumber.json").read_text())
    except (OSError, ValueError):
        return ""
    return "\n".join(step["result"].get("error_message", "") for feature in features
                     for scenario in feature.get("elements", []) for step in scenario.get("steps", [])
                     if step.get("result", {}).get("status") == "failed")


@then(parsers.parse('from inside every service\'s container, "{first}" on port {first_port:d} and "{second}" on '
                    'port {second_port:d} answer by name'))
def _cross_service(stack, evidence, first, first_port, second, second_port):
    check_connections_by_name(stack, evidence, "connections to the databases by name, from every container",
                              [(source, target, port) for source in stack.services
                               for target, port in ((first, first_port), (second, second_port))])
