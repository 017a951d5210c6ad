"""Operator commands for the trading-ecosystem stack (run through infra/host/stackctl).

    stackctl up                      build what is missing, start, wait until every service is healthy
    stackctl down [--volumes]        stop and remove the containers; volumes are kept unless --volumes
    stackctl status                  services, state, health, addresses and published ports
    stackctl validate [--select TAGS] the acceptance suite in attach mode; exit code is the verdict
    stackctl logs [SERVICE ...]      the services' logs (--tail N, --follow)
    stackctl verify-evidence FILE    check a run's evidence bundle (reports/evidence-*.tar.gz): its
                                     manifest and, with --allowed-signers FILE (env TSE_ALLOWED_SIGNERS),
                                     its signature; needs no Docker engine

`stackctl --swarm up|down|status|validate|logs` does the same with the stack deployed on this
engine's Docker Swarm (initialised when the engine is in none; `docker swarm leave --force` undoes
that): the stack file is made from docker-compose.yml (steps/harness/swarm_file.py), the ports are
published on 127.0.0.1 by the stack's gateway container.

Options before the command: --project-name (env TSE_PROJECT, else COMPOSE_PROJECT_NAME from the
environment or the env file, else trading-ecosystem) and --env-file (default .env, else .env.example).
The probes are the acceptance suite's own.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from steps.harness import ACCEPTANCE_PYTEST  # noqa: E402
from steps.harness.compose import compose_for  # noqa: E402
from steps.harness.settings import StackSettings  # noqa: E402
from steps.harness.swarm import join_swarm, swarm_for  # noqa: E402
from steps.probes import ProbeError, StackError, container_state, docker_engine, swarm_engine  # noqa: E402
from steps.probes.start_order import StartRecorder, load_record, record_path  # noqa: E402
from steps.report.bundle import ALLOWED_SIGNERS_ENV, verify_bundle  # noqa: E402

DEFAULT_WIDTH = 100          # the lines' width when the output is not a terminal


class CommandError(Exception):
    """A command cannot do its job; the message says why and what to do."""


def _compose(args):
    """The settings and the stack's driver: docker compose, or docker stack with --swarm."""
    settings = StackSettings.resolve(mode="attach", project=args.project_name, env_file=args.env_file,
                                     overrides={"TSE_MODE": getattr(args, "security_mode", None)})
    make = swarm_for if args.swarm else compose_for
    return settings, make(settings, Path(tempfile.mkdtemp(prefix="stackctl-")))


def _require_engine() -> None:
    try:
        docker_engine.client()
    except StackError as error:
        raise CommandError(str(error)) from None


def _require_stack(project: str) -> None:
    if not docker_engine.project_containers(project):
        raise CommandError(f"no stack is running under compose project {project}. "
                           f"Hint: `stackctl up`, or pass --project-name.")


def status_rows(project: str, services: list[str], network: str) -> list[tuple]:
    """One row per declared service: service, state, health, address, published ports."""
    rows = []
    for service in services:
        try:
            state = container_state.state(project, service).observed
            addresses = container_state.addresses(project, service).observed
            # Prometheus and the exporters are on the monitoring network only: its address, named.
            address = addresses.get(network) or ", ".join(f"{ip} ({name})" for name, ip in addresses.items()) or "-"
            ports = container_state.published_ports(project, service).observed
        except ProbeError:
            rows.append((service, "absent", "-", "-", "-"))
            continue
        published = ", ".join(f"{ip}:{port}->{target}" for target, bindings in sorted(ports.items())
                              for ip, port in bindings) or "-"
        rows.append((service, state["status"], state["health"] or "none", address, published))
    return rows


def format_table(header: tuple, rows: list[tuple], width: int | None = None) -> str:
    """Columns lined up. With `width`, no line is longer: a cell too wide for its column is wrapped
    inside it (every word kept), its continuation lines under the column's start."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    if width is not None:
        widths = fit_columns(widths, width)
    lines = []
    for line in [header, *rows]:
        cells = [wrap_cell(str(cell), w) for cell, w in zip(line, widths, strict=False)]
        lines += ["  ".join(part.ljust(w) for part, w in zip(parts, widths, strict=False)).rstrip()
                  for parts in itertools.zip_longest(*cells, fillvalue="")]
    return "\n".join(lines)


def fit_columns(widths: list[int], width: int) -> list[int]:
    """Column widths within `width`: the last column (a verdict and its reason, what the reader is
    after) gets the room the others leave, at least half the line; leading columns wider than their
    share are narrowed."""
    gaps = 2 * (len(widths) - 1)
    leading, last = list(widths[:-1]), widths[-1]
    last_least = min(last, max(width // 2, 20))
    if leading and sum(leading) + gaps + last_least > width:
        share = max((width - gaps - last_least) // len(leading), 10)
        leading = [min(w, share) for w in leading]
    return [*leading, max(min(last, width - sum(leading) - gaps), 10)]


def wrap_cell(text: str, width: int) -> list[str]:
    """A cell's lines at most `width` long; words are kept whole unless one alone is longer."""
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def terminal_width() -> int:
    return shutil.get_terminal_size(fallback=(DEFAULT_WIDTH, 24)).columns


def cmd_status(args) -> int:
    _require_engine()
    settings, compose = _compose(args)
    _require_stack(settings.project)
    rows = status_rows(settings.project, compose.service_names, settings.network_name)
    healthy = all(row[2] == "healthy" for row in rows)
    if args.swarm:
        # The swarm's tasks publish nothing: the gateway publishes every port on 127.0.0.1.
        try:
            ports = swarm_engine.gateway_ports(settings.project).observed
            published = ", ".join(f"{ip}:{port}->{target}" for target, bindings in sorted(ports.items())
                                  for ip, port in bindings)
            rows.append(("(gateway)", "running", "-", "-", published))
        except ProbeError as error:
            rows.append(("(gateway)", "absent", "-", "-", str(error)))
            healthy = False
    print(format_table(("SERVICE", "STATE", "HEALTH", "ADDRESS", "PORTS"), rows))
    return 0 if healthy else 1


def cmd_up(args) -> int:
    ensure = subprocess.run([str(ROOT / "infra/host/ensure-docker")])
    if ensure.returncode != 0:
        raise CommandError("no Docker engine (see the line above).")
    settings, compose = _compose(args)
    if args.swarm:
        try:
            join_swarm(settings)
            compose.ensure_images()
            compose.up()
        except StackError as error:
            raise CommandError(str(error)) from None
        return cmd_status(args)
    try:
        compose.ensure_images()
        recorder = StartRecorder(settings.project, "stackctl up").start()
        try:
            compose.up()
            missing = recorder.hear_every_healthy()
            if missing:
                print(f"stackctl up: {missing}; the start record may not prove the start order", file=sys.stderr)
        finally:
            save_start_record(recorder.stop(), record_path(ROOT, settings.project))
    except StackError as error:
        raise CommandError(str(error)) from None
    return cmd_status(args)


def save_start_record(record, path: Path) -> None:
    """Keep the engine's start and health events of this `up` for `stackctl validate` (attach
    mode): Docker's own health log and event buffer forget them within minutes. When this `up` found
    containers running, the record of the `up` that started them is kept too."""
    earlier = load_record(path)
    if earlier is not None and earlier.project == record.project and not record.fresh:
        record.since_ns, record.fresh = earlier.since_ns, earlier.fresh
        record.events = earlier.events + record.events
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record.to_json())


def cmd_down(args) -> int:
    _require_engine()
    settings, compose = _compose(args)
    if not docker_engine.project_containers(settings.project) and not (
            args.volumes and docker_engine.leftovers(settings.project)["volumes"]):
        raise CommandError(f"nothing to take down under compose project {settings.project}. "
                           f"Hint: pass --project-name.")
    if args.swarm:
        compose.remove(volumes=args.volumes)
        return 0
    result = compose.run("down", *(["--volumes"] if args.volumes else []))
    sys.stderr.write(result.stderr)
    if result.returncode == 0:
        record_path(ROOT, settings.project).unlink(missing_ok=True)
    return result.returncode


def cmd_logs(args) -> int:
    _require_engine()
    settings, compose = _compose(args)
    _require_stack(settings.project)
    follow = ["--follow"] if args.follow else []
    if args.swarm:
        services = args.services or compose.service_names
        return max(subprocess.call(["docker", "service", "logs", "--tail", str(args.tail), *follow,
                                    f"{settings.project}_{service}"]) for service in services)
    command = [*compose.command, "logs", "--tail", str(args.tail), *follow, *args.services]
    return subprocess.call(command, cwd=compose.context)


def checklist_summary(report: dict) -> tuple[list, list]:
    """(rows of item, verdict) from the run's checklist.json, and the failures as (scenario, what
    failed), whole: the table wraps them (checklist_lines)."""
    rows, failures = [], []
    for item in report.get("items", []):
        notes = [item["reason"]] if item["reason"] and item["verdict"] != "passed" else []
        waiver = item.get("waiver")
        if waiver:
            label = "waived" if waiver["status"] == "waived" else f"waiver {waiver['status']}"
            notes.append(f"{label}: {waiver['justification']} (accepted by "
                         f"{waiver['accepted_by']}, until {waiver['expires']})")
        rows.append((f"{item['id']} {item['title']}", item["verdict"] + (f" ({'; '.join(notes)})" if notes else "")))
        if item["verdict"] == "failed":  # a waived item's failures do not fail the run
            failures += [(s["name"], s["reason"]) for s in item["scenarios"] if s["outcome"] == "failed"]
    return rows, list(dict.fromkeys(failures))


def cmd_validate(args) -> int:
    _require_engine()
    settings, compose = _compose(args)
    _require_stack(settings.project)
    reports = Path(args.reports_dir or ROOT / "reports/validate")
    reports.mkdir(parents=True, exist_ok=True)
    addresses = {k: v for k, v in settings.values.items() if k.startswith("TSE_") or k.endswith("_HOST_PORT")}
    env = {**os.environ, **addresses}
    command = [*ACCEPTANCE_PYTEST, "--stack=attach",
               f"--project-name={settings.project}", f"--env-file={settings.env_file}",
               f"--html={reports / 'acceptance.html'}", "--self-contained-html",
               f"--cucumberjson={reports / 'cucumber.json'}", f"--junitxml={reports / 'junit.xml'}",
               # A few selected scenarios: one process is quicker than starting parallel workers.
               *(["-m", args.select, "-n", "0"] if args.select else [])]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    checklist_path = reports / "checklist.json"
    report = json.loads(checklist_path.read_text()) if checklist_path.exists() else {}
    if not report:
        print(result.stdout[-3000:] + result.stderr[-2000:])
    else:
        print(f"BDD criterion: {report.get('criterion_line') or report['criterion'].upper()}")
    print(checklist_lines(report, terminal_width()))
    print(f"validate: {'passed' if result.returncode == 0 else 'FAILED'} (reports in {reports})")
    return result.returncode


def checklist_lines(report: dict, width: int) -> str:
    """The checklist's table and the failed scenarios, every reason whole, no line wider than `width`."""
    rows, failures = checklist_summary(report)
    lines = [format_table(("CHECKLIST ITEM", "VERDICT"), rows, width)]
    lines += [textwrap.fill(f"FAILED {scenario}: {line}", width, subsequent_indent=" " * len("FAILED "),
                            break_on_hyphens=False) for scenario, line in failures]
    return "\n".join(lines)


def cmd_verify_evidence(args) -> int:
    """No engine needed: the bundle is read in memory and its signature checked by ssh-keygen."""
    bundle = Path(args.file)
    allowed = Path(args.allowed_signers) if args.allowed_signers else None
    if not bundle.is_file():
        raise CommandError(f"no evidence bundle at {bundle}. Hint: the runs write reports/evidence-*.tar.gz.")
    if allowed is not None and not allowed.is_file():
        raise CommandError(f"no allowed-signers file at {allowed} (--allowed-signers, env {ALLOWED_SIGNERS_ENV}).")
    verification = verify_bundle(bundle, allowed)
    for line in verification.lines:
        print(line)
    if verification.ok:
        print("verify-evidence: OK")
        return 0
    print(f"verify-evidence: FAILED ({len(verification.failures)} findings)")
    return 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stackctl", description=__doc__.splitlines()[0])
    parser.add_argument("--project-name", default=os.environ.get("TSE_PROJECT"),
                        help="compose project (default: TSE_PROJECT, COMPOSE_PROJECT_NAME, trading-ecosystem)")
    parser.add_argument("--env-file", default=os.environ.get("TSE_ENV_FILE"))
    parser.add_argument("--swarm", action="store_true", help="the stack deployed on this engine's Docker Swarm")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build, start and wait until healthy")
    up.add_argument("--mode", dest="security_mode", choices=["development", "production"], default=None,
                    help="production: refuse every password .env.example publishes or shorter than 16 characters "
                         "(default: TSE_MODE, else development)")
    up.set_defaults(run=cmd_up)
    down = commands.add_parser("down", help="stop and remove the containers (volumes kept)")
    down.add_argument("--volumes", "-v", action="store_true", help="also remove the volumes and their data")
    down.set_defaults(run=cmd_down)
    commands.add_parser("status", help="services, health, addresses, ports").set_defaults(run=cmd_status)
    validate = commands.add_parser("validate", help="run the acceptance suite against the running stack")
    validate.add_argument("--reports-dir", default=None, help="where to write the reports (default reports/validate)")
    validate.add_argument("--select", default=None, metavar="TAGS",
                          help='only the scenarios with these tags, e.g. "section_5 or bdd_healthy" (pytest -m)')
    validate.set_defaults(run=cmd_validate)
    logs = commands.add_parser("logs", help="the services' logs")
    logs.add_argument("services", nargs="*")
    logs.add_argument("--tail", type=int, default=100)
    logs.add_argument("--follow", "-f", action="store_true")
    logs.set_defaults(run=cmd_logs)
    verify = commands.add_parser("verify-evidence", help="check a run's evidence bundle (no Docker needed)")
    verify.add_argument("file", help="the bundle, reports/evidence-<date>-<commit>.tar.gz")
    verify.add_argument("--allowed-signers", default=os.environ.get(ALLOWED_SIGNERS_ENV) or None, metavar="FILE",
                        help=f"ssh-keygen allowed-signers file to check the signature (default: env "
                             f"{ALLOWED_SIGNERS_ENV})")
    verify.set_defaults(run=cmd_verify_evidence)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, StackError) as error:
        print(f"stackctl {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
