"""The faults' acceptance runs, side by side.

Each run is a copy of the repository on its own compose project, ports and subnet, and spends most
of its time waiting (a TTL to lapse, a probe round, a healthcheck), so a few run at once: as many as
the machine's cores, fewer when its memory cannot hold that many stacks (TSE_FAULT_JOBS sets it).
The runs start longest first (the swarm faults' lane, then the compose faults by kind: see
tests/faults/timings.py); each test waits for its own run and judges it (tests/faults/scope.py says
what a run takes and what its outcome must be).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from steps.harness.compose import IMAGES_BUILT_VARIABLE, compose_for, new_workdir
from steps.harness.settings import StackSettings
from steps.harness.swarm import join_swarm, leave_swarm
from steps.probes import docker_engine
from tests.acceptance_copy import (
    RESERVATIONS,
    ROOT,
    AcceptanceRun,
    Reservations,
    copy_repository,
    images_tagged,
    own_images,
    remove_own_images,
    run_acceptance,
    stack_changing_only_tags,
    stop_children,
)
from tests.faults.faults import Fault
from tests.faults.scope import selection
from tests.faults.sharing import shared_runs
from tests.faults.timings import busy_cpu_seconds, start_rank, summary

# What one stack holds in memory, measured with `docker stats` (7 services, about 0.6 GiB) plus the
# pytest that drives it, rounded up.
STACK_MEMORY = 1 << 30


def fault_jobs() -> int:
    """How many fault runs at once: TSE_FAULT_JOBS, else the cores, fewer when memory is short.
    Measured on 2 cores (nine faults): 222 s two at a time (CPU 55 % busy), 175 s three at a time
    (75 %); but three stacks on two cores delayed a Redis message behind its publisher's reply and
    failed 6.7 in two runs of twenty: the verdicts must not depend on the machine's load, so no more
    stacks than cores by default."""
    if os.environ.get("TSE_FAULT_JOBS"):
        jobs = int(os.environ["TSE_FAULT_JOBS"])
        if jobs < 1:
            raise ValueError(f"TSE_FAULT_JOBS={jobs}: it must be 1 or more")
        return jobs
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, min(os.cpu_count() or 1, available // STACK_MEMORY))


def fault_run_workers() -> list:
    """pytest-xdist's -n for each fault run: TSE_FAULT_RUN_WORKERS, else 0 (one scenario after another).
    Measured (ten faults, two runs at a time): 403 s at 0, 350 s at 3 workers each; but two CI runs
    with 3 workers each had collateral failures seen under that load only (a 6.3 read racing the
    other worker's invalidation, now allowed for; one 1.1 fault whose cause its run did not keep), and
    the runs already go side by side: a verdict must not depend on the machine's load."""
    return ["-n", os.environ.get("TSE_FAULT_RUN_WORKERS", "0")]


def shard(faults: list[Fault]) -> list[Fault]:
    """TSE_FAULT_SHARD=k/n: every n-th fault from the k-th (a CI matrix over n shards); all of them
    when it is not set."""
    value = os.environ.get("TSE_FAULT_SHARD")
    if not value:
        return faults
    k, _, n = value.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f"TSE_FAULT_SHARD={value}: it must be k/n with 1 <= k <= n, as 2/4 for the second of four")
    return faults[int(k) - 1::int(n)]


@dataclass
class FaultRun:
    """A run of one fault, or of the faults sharing it, and what it left: its project's containers,
    networks, volumes and images."""

    faults: tuple
    copy: Path
    project: str
    run: AcceptanceRun
    leftovers: dict
    images_left: list
    own_images: bool  # built a set of images of its own (a file an image copies changed)
    seconds: float  # from the copy to the last leftover read


def run_faults(faults: tuple, workdir: Path, reservations: Reservations, scope: str) -> FaultRun:
    """Apply `faults` (one, or those sharing a run: tests/faults/sharing.py) to a copy in `workdir`
    and run the acceptance suite on it, taking what `scope` selects (tests/faults/scope.py)."""
    started = time.monotonic()
    copy = copy_repository(workdir / "stack")
    for fault in faults:
        fault.apply(copy)
    # The first fault names the run. A swarm stack's name prefixes its services' (at most 63
    # characters with the longest).
    fault = faults[0]
    project = f"tse-fault-{fault.name}"[:60] if fault.stack == "up" else f"tse-{fault.name}"[:32]
    run = _run_fault(fault, copy, project, selection(faults, scope, stack_changing_only_tags()), reservations)
    run.faults, run.seconds = faults, time.monotonic() - started
    return run


def _run_fault(fault: Fault, copy: Path, project: str, selection: list, reservations: Reservations) -> FaultRun:
    """The run of `fault`'s copy; the faults sharing a run have neither a volume nor a mode of their own."""
    images = own_images(copy, project)
    # Sharing the images built before the runs started: the copy's run builds nothing.
    env = reservations.environment(project, **(images or {IMAGES_BUILT_VARIABLE: "1"}))
    if fault.external_volume:
        docker_engine.client().volumes.create(fault.external_volume)
    if fault.mode == "production":
        # An env file of the copy's own, as an operator makes it, and the mode that refuses any other.
        env_file = copy / "production.env"
        subprocess.run([sys.executable, str(copy / "infra/host/make-env"), "--production", "--output", str(env_file)],
                       check=True)
        selection = [*selection, "--mode=production", f"--env-file={env_file}"]
    try:
        run = run_acceptance(copy, env, *selection, *fault_run_workers())
    finally:
        reservations.release(env)
        if fault.external_volume:
            docker_engine.client().volumes.get(fault.external_volume).remove(force=True)
        remove_own_images(project)
    return FaultRun((fault,), copy, project, run, docker_engine.leftovers(project), images_tagged(project),
                    bool(images), 0.0)


def build_shared_images() -> None:
    """The images every run without a fault inside an image shares, built once before the runs start
    (side by side, each would find them missing and build them at once)."""
    settings = StackSettings.resolve(mode="up", env_file=ROOT / ".env.example")
    workdir = new_workdir()
    try:
        compose_for(settings, workdir).ensure_images()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class FaultRuns:
    """The runs of `faults` in `scope`, `jobs` at a time, longest first, except the swarm faults:
    those go one after another in a lane of their own, started first beside the compose faults. The
    engine joins a swarm (initialising one when it is in none) before any run starts, and leaves the
    one it made when the last run has ended: a swarm's init and leave reset the engine's networking,
    which once cut a compose run's connections inside its own network."""

    def __init__(self, faults: list[Fault], workdir: Path, jobs: int, scope: str, alone=frozenset()):
        self.started, self.busy_at_start = time.monotonic(), busy_cpu_seconds()
        self.ended, self.busy_at_end = None, None  # when the last run ended: the suite's figures stop there
        self.faults, self.jobs = faults, jobs
        build_shared_images()
        self.reservations = RESERVATIONS
        self.workdir, self.scope = workdir, scope
        self.closing, self.initialised_swarm = False, False
        self.lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fault-run")
        swarm = [fault for fault in faults if fault.stack == "swarm"]
        self.runs: dict[str, Future] = {fault.name: Future() for fault in swarm}
        if swarm:
            try:
                self.initialised_swarm = join_swarm(StackSettings.resolve(mode="swarm", env_file=ROOT / ".env.example"))
            except BaseException as error:  # noqa: BLE001 - each swarm fault's test reports why its run never started
                for fault in swarm:
                    self.runs[fault.name].set_exception(error)
            else:
                self.executor.submit(self._swarm_lane, swarm)
        # The compose faults' runs (several sharing one in the scoped runs: tests/faults/sharing.py),
        # each started by the rank of its first to start.
        stack_only = stack_changing_only_tags()
        compose = shared_runs([fault for fault in faults if fault.stack != "swarm"], scope, stack_only, alone)
        for shared in sorted(compose, key=lambda run: min(start_rank(fault, stack_only) for fault in run)):
            future = self.executor.submit(self._run, shared)
            self.runs.update({fault.name: future for fault in shared})
        distinct = set(self.runs.values())
        self.outstanding = len(distinct)
        for run in distinct:
            run.add_done_callback(self._one_ended)

    def _run(self, faults: tuple) -> FaultRun:
        return run_faults(faults, self.workdir / faults[0].name, self.reservations, self.scope)

    def _swarm_lane(self, faults: list[Fault]) -> None:
        for fault in faults:
            if self.closing:
                self.runs[fault.name].cancel()
                continue
            try:
                self.runs[fault.name].set_result(self._run((fault,)))
            except BaseException as error:  # noqa: BLE001 - handed to the fault's own test
                self.runs[fault.name].set_exception(error)

    def _one_ended(self, _run: Future) -> None:
        with self.lock:
            self.outstanding -= 1
            last = self.outstanding == 0
        if last:
            self.ended, self.busy_at_end = time.monotonic(), busy_cpu_seconds()
            self._leave_swarm()

    def _leave_swarm(self) -> None:
        with self.lock:
            initialised, self.initialised_swarm = self.initialised_swarm, False
        if initialised:
            leave_swarm()

    def result(self, fault: Fault) -> FaultRun:
        return self.runs[fault.name].result()

    def close(self) -> None:
        """Runs not started are dropped; those still running (after a Ctrl-C or a failure elsewhere) are
        ended as a Ctrl-C ends them, taking their stacks down; a swarm made for them is left."""
        self.closing = True
        self.executor.shutdown(wait=False, cancel_futures=True)
        stop_children()
        self.executor.shutdown(wait=True)
        for run in self.runs.values():  # the swarm lane's, when the lane itself never started
            run.cancel()
        self._leave_swarm()  # after an interrupt: the runs that never ended leave it to us

    def timings(self) -> dict:
        """Where the time went (tests/faults/timings.py), read after close(): from the start to the
        last run's end (not to the session's end, after the other tests), or to now after an interrupt."""
        ended = [run.result() for run in set(self.runs.values())
                 if run.done() and not run.cancelled() and run.exception() is None]
        ended_at, busy_at_end = (self.ended, self.busy_at_end) if self.ended else (time.monotonic(), busy_cpu_seconds())
        return summary(self.scope, self.jobs, ended_at - self.started, busy_at_end - self.busy_at_start, ended,
                       stack_changing_only_tags())
