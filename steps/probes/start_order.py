"""When the containers of a compose project started and first became healthy, from evidence that
does not age away, and whether each dependent started after its dependencies were healthy.

Docker forgets quickly: a container's health log keeps its last five checks, and the engine's event
buffer its last 256 events (each healthcheck adds three: exec_create, exec_start, exec_die), so on a
stack that has been up for a minute neither still shows when a service first became healthy. The
sources, strongest first, each used only where it provably still covers the start:

1. "start record": the engine's events, heard live by a `StartRecorder` from before `up` (the
   acceptance harness in up mode, `stackctl up` for attach mode, which saves it to a file);
2. "engine events": the engine's buffer, while it still holds the dependency's own start event;
3. "health log": the dependency's health log, while nothing since its start has rotated out;
4. "depends_on label": what the stack still shows for good: compose's `com.docker.compose.depends_on`
   label on the dependent (the condition compose enforced when it started it) and the two start times.

`order_verdict` is a plain function over those facts, so each source's rule is unit-tested.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from steps.probes import container_state, docker_engine
from steps.probes.facts import Fact
from steps.probes.waiting import WaitTimeout, wait_until

HEALTH_LOG_ENTRIES = 5  # Docker's maxLogEntries: the health log never holds more
# A recorded start event is the dependent's current start when their times are this close.
SAME_START = timedelta(seconds=2)
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
DEPENDS_ON_LABEL = "com.docker.compose.depends_on"


def _moment(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, tz=timezone.utc)


def _event_entry(event: dict) -> dict | None:
    """A start, die or health_status event as {"id", "service", "action", "time_ns"}; None for others."""
    action = event.get("Action") or event.get("status") or ""
    if event.get("Type", "container") != "container" or (action not in ("start", "die")
                                                         and not action.startswith("health_status")):
        return None
    actor = event.get("Actor") or {}
    return {
        "id": actor.get("ID") or event.get("id"),
        "service": (actor.get("Attributes") or {}).get(SERVICE_LABEL),
        "action": action.replace("health_status: ", "health_status:"),
        "time_ns": event.get("timeNano") or event.get("time", 0) * 10**9,
    }


@dataclass
class StartRecord:
    """The start and health_status events of one compose project, every one of them from `since_ns`
    on. `fresh`: nothing of the project ran before `since_ns` (heard from before its first start)."""

    project: str
    since_ns: int
    events: list = field(default_factory=list)
    recorded_by: str = ""
    fresh: bool = False

    @property
    def since(self) -> datetime:
        return _moment(self.since_ns)

    def last_start_before(self, service: str, moment: datetime) -> tuple[datetime, str] | None:
        """(time, container id) of the service's last start at or before `moment`."""
        starts = [(_moment(e["time_ns"]), e["id"]) for e in self.events
                  if e["service"] == service and e["action"] == "start" and _moment(e["time_ns"]) <= moment]
        return max(starts, default=None)

    def died_between(self, container_id: str, start: datetime, end: datetime) -> datetime | None:
        return min((_moment(e["time_ns"]) for e in self.events if e["id"] == container_id and e["action"] == "die"
                    and start < _moment(e["time_ns"]) <= end), default=None)

    def first_healthy(self, container_id: str, after: datetime) -> datetime | None:
        times = [_moment(e["time_ns"]) for e in self.events
                 if e["id"] == container_id and e["action"] == "health_status:healthy"
                 and _moment(e["time_ns"]) >= after]
        return min(times, default=None)

    def to_json(self) -> str:
        return json.dumps({"project": self.project, "since_ns": self.since_ns, "recorded_by": self.recorded_by,
                           "fresh": self.fresh, "events": self.events}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "StartRecord":
        data = json.loads(text)
        return cls(data["project"], int(data["since_ns"]), list(data["events"]), data.get("recorded_by", ""),
                   bool(data.get("fresh")))


class StartRecorder:
    """Hears the engine's events for one compose project from `start()` to `stop()`, on a thread of
    its own with a client without read timeout (a quiet minute must not end the stream); a dropped
    stream is resumed from the last event heard."""

    def __init__(self, project: str, recorded_by: str):
        self.record = StartRecord(project, 0, recorded_by=recorded_by)
        self._stopping = threading.Event()
        self._stream = None
        self._thread: threading.Thread | None = None

    def start(self) -> "StartRecorder":
        self.record.fresh = not docker_engine.project_containers(self.record.project)
        self.record.since_ns = int(datetime.now(timezone.utc).timestamp() * 1e9)
        self._thread = threading.Thread(target=self._listen, name=f"events-{self.record.project}", daemon=True)
        self._thread.start()
        return self

    def _listen(self) -> None:
        import signal

        import docker

        # Ctrl-C and SIGTERM go to the main thread: delivered here, they would not interrupt what
        # the main thread is blocked in (waiting for `up`), and the run would go on.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        engine = docker.from_env(timeout=None)
        since = self.record.since_ns / 1e9
        while not self._stopping.is_set():
            try:
                self._stream = engine.events(since=since, decode=True, filters={
                    "type": "container", "label": f"{PROJECT_LABEL}={self.record.project}"})
                for event in self._stream:
                    entry = _event_entry(event)
                    if entry:
                        self.record.events.append(entry)
                    since = (event.get("timeNano") or since * 1e9) / 1e9
            except Exception:  # noqa: BLE001 - a dropped stream is resumed, a closed one ends the loop
                if self._stopping.wait(0.2):
                    break
        engine.close()

    def heard_healthy(self, container_ids: list[str]) -> bool:
        """Whether a healthy event was heard for each of these containers."""
        healthy = {e["id"] for e in self.record.events if e["action"] == "health_status:healthy"}
        return set(container_ids) <= healthy

    def hear_every_healthy(self) -> str | None:
        """Wait (10 s at most) for the healthy events of every container this record saw start that
        has a healthcheck: `up --wait` returns once Docker reports them healthy, and the events saying
        so may reach the recorder a moment later. None once heard, else what is missing."""
        started = {e["id"] for e in self.record.events if e["action"] == "start"}
        with_healthcheck = [c.id for c in docker_engine.project_containers(self.record.project) if c.id in started
                            and (c.attrs["Config"].get("Healthcheck") or {}).get("Test", ["NONE"])[0] != "NONE"]
        try:
            wait_until(lambda: self.heard_healthy(with_healthcheck), timeout=10, interval=0.1,
                       description="the healthy events of every service")
        except WaitTimeout as error:
            return str(error)
        return None

    def stop(self) -> StartRecord:
        self._stopping.set()
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # noqa: BLE001 - closing a stream the engine already ended
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.record


def record_path(root: Path, project: str) -> Path:
    """Where `stackctl up` keeps the start record of `project` (read by attach mode)."""
    return root / ".stack" / f"{project}.start-record.json"


def load_record(path: Path) -> StartRecord | None:
    try:
        return StartRecord.from_json(path.read_text())
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class ContainerRun:
    """What the engine still shows of a container's current run."""

    service: str
    container_id: str
    started_at: datetime
    restart_count: int
    health_log: tuple  # ((start, end, exit_code), ...) oldest first
    depends_on: dict  # {dependency: condition} from compose's label


def parse_depends_on_label(text: str) -> dict:
    """Compose's label "redis:service_healthy:false,postgres:service_healthy:false" as
    {"redis": "service_healthy", "postgres": "service_healthy"}."""
    result = {}
    for part in filter(None, (text or "").split(",")):
        name, _, rest = part.partition(":")
        result[name] = rest.split(":")[0] or "service_started"
    return result


def container_run(project: str, service: str) -> ContainerRun:
    target = docker_engine.container(project, service)
    state = target.attrs["State"]
    log = (state.get("Health") or {}).get("Log") or []
    return ContainerRun(
        service, target.id, container_state.parse_time(state["StartedAt"]), target.attrs.get("RestartCount", 0),
        tuple((container_state.parse_time(e["Start"]), container_state.parse_time(e["End"]), e.get("ExitCode"))
              for e in log),
        parse_depends_on_label(target.labels.get(DEPENDS_ON_LABEL, "")),
    )


def buffered_record(project: str) -> StartRecord:
    """What the engine's event buffer still holds of the project, as a record complete from its
    oldest event; fresh when it still holds the creation of the project's network (compose creates
    it before any container, and it lives until `down`)."""
    now = datetime.now(timezone.utc)
    held = list(docker_engine.client().events(since=1, until=now, decode=True))
    networks = {n.id for n in docker_engine.client().networks.list(filters={"label": f"{PROJECT_LABEL}={project}"})}
    created = [e.get("timeNano") for e in held if e.get("Type") == "network" and e.get("Action") == "create"
               and (e.get("Actor") or {}).get("ID") in networks]
    since = created[0] if created else (held[0].get("timeNano") if held else int(now.timestamp() * 1e9))
    mine = [e for e in held if ((e.get("Actor") or {}).get("Attributes") or {}).get(PROJECT_LABEL) == project]
    return StartRecord(project, since, [x for x in map(_event_entry, mine) if x], "the engine's event buffer",
                       bool(created))


def health_log_first_healthy(run: ContainerRun) -> tuple[bool, datetime | None]:
    """(whether the log still holds every check of the current run, end of its first passing check).
    Complete when it has room left, or still holds a check from before the current start."""
    complete = len(run.health_log) < HEALTH_LOG_ENTRIES or any(start < run.started_at for start, _, _ in run.health_log)
    passed = [end for start, end, code in run.health_log if code == 0 and start >= run.started_at]
    return complete, min(passed, default=None)


@dataclass(frozen=True)
class OrderVerdict:
    ok: bool
    source: str
    healthy_at: datetime | None
    detail: str


def order_verdict(dependent: ContainerRun, dependency: ContainerRun, record: StartRecord | None = None,
                  engine: StartRecord | None = None) -> OrderVerdict:
    """Whether `dependent` started after `dependency` was healthy, from the strongest source that
    still covers the dependent's start (see the module's docstring)."""
    for source, heard in (("start record", record), ("engine events", engine)):
        verdict = _by_events(source, heard, dependent, dependency) if heard is not None else None
        if verdict is not None:
            return verdict
    if dependency.started_at > dependent.started_at:
        # The dependency's current run began after the dependent's: restarted since (its policy, an
        # operator). How the dependent's start went is told only by what compose enforced then.
        return _by_label(dependent, dependency, f"{dependency.service} restarted after {dependent.service} started "
                                                f"({dependency.started_at.isoformat()})")
    complete, healthy = health_log_first_healthy(dependency)
    if complete:
        return _compare("health log", dependent.started_at, healthy, dependency)
    return _by_label(dependent, dependency,
                     "start record, engine events and health log no longer reach back to the start")


def _by_events(source: str, heard: StartRecord, dependent: ContainerRun,
               dependency: ContainerRun) -> OrderVerdict | None:
    """The verdict of a record complete from `heard.since`, or None when it cannot tell: it began
    after the dependent started, or after the dependency's last start before that."""
    started = dependent.started_at
    if heard.since - SAME_START > started:
        return None
    last = heard.last_start_before(dependency.service, started)
    if last is None:
        if not heard.fresh:
            return None
        return OrderVerdict(False, source, None, f"no container of {dependency.service} had started yet")
    moment, container_id = last
    died = heard.died_between(container_id, moment, started)
    if died is not None:
        return OrderVerdict(False, source, None,
                            f"{dependency.service} was not running (stopped at {died.isoformat()})")
    return _compare(source, started, heard.first_healthy(container_id, moment), dependency)


def _compare(source: str, started: datetime, healthy: datetime | None, dependency: ContainerRun) -> OrderVerdict:
    if healthy is None:
        return OrderVerdict(False, source, None, f"{dependency.service} never reported healthy")
    return OrderVerdict(healthy <= started, source, healthy,
                        f"{dependency.service} healthy at {healthy.isoformat()}")


def _by_label(dependent: ContainerRun, dependency: ContainerRun, why: str) -> OrderVerdict:
    condition = dependent.depends_on.get(dependency.service)
    gap = (dependent.started_at - dependency.started_at).total_seconds()
    order = (f"{dependent.service} started {gap:.1f} s after {dependency.service}" if gap >= 0
             else f"{dependency.service} restart count {dependency.restart_count}")
    return OrderVerdict(
        condition == "service_healthy", "depends_on label", None,
        f"{why}; compose started {dependent.service} with depends_on {dependency.service}: "
        f"{condition or 'absent'}; {order}")


def start_orders(project: str, dependencies: dict, record: StartRecord | None) -> list[Fact]:
    """For each dependent and each of its dependencies ({dependent: [dependency, ...]}), whether it
    started after the dependency was healthy. Each Fact's observed: {"dependent", "dependency", "ok",
    "source", "dependent_started", "dependency_healthy", "detail"}."""
    facts, engine, runs = [], None, {}

    def run_of(service: str) -> ContainerRun:  # one inspect per service, however many depend on it
        if service not in runs:
            runs[service] = container_run(project, service)
        return runs[service]

    for dependent, needed in dependencies.items():
        later = run_of(dependent)
        for dependency in needed:
            earlier = run_of(dependency)
            if engine is None and (record is None or _by_events("", record, later, earlier) is None):
                engine = buffered_record(project)  # read once: the buffer only grows during the step
            verdict = order_verdict(later, earlier, record, engine)
            observed = {
                "dependent": dependent,
                "dependency": dependency,
                "ok": verdict.ok,
                "source": verdict.source,
                "dependent_started": later.started_at.isoformat(),
                "dependency_healthy": verdict.healthy_at.isoformat() if verdict.healthy_at else None,
                "detail": verdict.detail,
            }
            facts.append(Fact(f"start order ({verdict.source})", f"{dependent} after {dependency} (project {project})",
                              observed))
    return facts
