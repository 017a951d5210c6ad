"""Probes only ask: no module under steps/probes/ calls a Docker API that changes state (run, create,
start, stop, kill, pause, remove, update...) or sends a signal (os.kill). What changes the stack is
the harness's (steps/harness/interventions.py, scratch.py), and a probe never imports the harness.
Read calls pass: list, get, inspect_*, logs, top, reload, attrs; so does exec_run, which runs a
command in a container without changing the container."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_boundaries import imported_modules

ROOT = Path(__file__).resolve().parents[2]
PROBES = ROOT / "steps" / "probes"

# Method names that change state, on whatever object: docker-py's high-level API (containers.run,
# container.pause, volume.remove, service.update...), its low-level one, and os.kill.
CHANGES_STATE = {
    "run", "create", "start", "stop", "kill", "killpg", "pause", "unpause", "remove", "prune", "restart",
    "update", "force_update", "rename", "put_archive", "commit", "build", "pull", "push", "tag", "load",
    "create_container", "create_volume", "create_network", "create_service", "create_secret", "create_config",
    "remove_container", "remove_volume", "remove_network", "remove_service", "remove_image", "update_container",
    "update_service", "connect_container_to_network", "disconnect_container_from_network",
    "prune_containers", "prune_volumes", "prune_networks", "prune_images",
}
# Calls of those names that change nothing of the stack: receiver and method, as the source says them.
NOT_DOCKER = {
    "subprocess.run": "a command on the host that reads (docker compose config)",
    "self._thread.start": "a thread of this process (start_order.py's event listener)",
    "match.start": "a regular expression match's offset (telemetry_files.py)",
}


def state_changing_calls(source: str) -> list[str]:
    """The calls in `source` that change state: "line: receiver.method(...)"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CHANGES_STATE:
            called = ast.unparse(node.func)
            if called not in NOT_DOCKER:
                found.append(f"{node.lineno}: {called}(...)")
    return found


def probe_modules() -> list[Path]:
    return sorted(PROBES.rglob("*.py"))


def test_no_probe_changes_state():
    found = {str(path.relative_to(ROOT)): calls for path in probe_modules()
             if (calls := state_changing_calls(path.read_text()))}
    assert not found, f"probes calling an API that changes state (move the function to steps/harness/): {found}"


def test_no_probe_imports_the_harness():
    found = {str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.startswith("steps.harness"))
             for path in probe_modules()}
    assert not {name: modules for name, modules in found.items() if modules}, \
        f"probes importing the harness (the harness may use the probes, not the other way): {found}"


def test_the_scan_sees_what_changes_state_and_passes_what_reads():
    changes = ('client().containers.run("x")\n'
               'target.pause()\n'
               'os.kill(pid, signal.SIGKILL)\n'
               'client().volumes.create(labels={})\n'
               'engine.api.remove_container("x", force=True)\n'
               'swarm_engine.service(stack, name).update(healthcheck={})\n')
    assert [line.split(":")[0] for line in state_changing_calls(changes)] == ["1", "2", "3", "4", "5", "6"]
    reads = ('client().containers.list(all=True)\n'
             'client().containers.get("x").attrs\n'
             'target.exec_run(["cat", "/proc/1/status"])\n'
             'target.top(ps_args="-o pid,comm")\n'
             'target.logs(tail=20)\n'
             'client().api.inspect_task("t")\n'
             'subprocess.run(["docker", "compose", "config"])\n')
    assert state_changing_calls(reads) == []
    for harness in ("scratch.py", "interventions.py"):
        assert state_changing_calls((ROOT / "steps" / "harness" / harness).read_text()), harness
