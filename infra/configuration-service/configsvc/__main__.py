"""python3 -m configsvc: validate the environment files (exit 2 on any problem), wait for PostgreSQL,
create the tables, seed them, then serve the API on 0.0.0.0:8090 (CONFIG_PORT).
python3 -m configsvc --check: validate the environment files only (exit 0 or 2)."""
import logging
import re
import sys

from configsvc.model import Invalid, canonical_environment
from configsvc.seed import Problem, load_environments
from configsvc.settings import Settings

STARTUP_WAIT_S = 30             # how long to wait for PostgreSQL to accept the login before giving up


class OneLineFormatter(logging.Formatter):
    """One line per record (psycopg's connection errors span several), so each log line stands alone."""

    def format(self, record: logging.LogRecord) -> str:
        return re.sub(r"\s*\n\s*", " ", super().format(record))


def validate(settings: Settings):
    """The environment files' parameters; exits 2 after one line per problem when there is any."""
    entries, problems = load_environments(settings.environments_dir)
    try:
        canonical_environment(settings.default_environment)
    except Invalid as invalid:
        problems.append(Problem("CONFIG_DEFAULT_ENVIRONMENT", settings.default_environment[:64], invalid.problem))
    for problem in problems:
        print(problem.line(), file=sys.stderr)
    if problems:
        sys.exit(2)
    return entries


def serve(settings: Settings, entries) -> int:
    from configsvc.app import create_app, redis_client_for
    from configsvc.seed import seed
    from configsvc.store import PostgresStore, StoreUnavailable, wait_for_postgres
    from servicekit import serving

    serving.prepare_metrics_dir()
    try:
        wait_for_postgres(settings, STARTUP_WAIT_S)
        store = PostgresStore.open(settings)
        store.create_tables()
        app = create_app(settings, store, redis_client_for(settings))
        seed(store, entries, app.state.notifier)
    except StoreUnavailable as error:
        print(f"PostgreSQL is unavailable: {error}", file=sys.stderr)
        return 1
    if settings.workers > 1:
        store.close()  # each worker opens its own
    # Several workers: each builds its app from the environment (configsvc.app:create_app).
    serving.serve(app, "configsvc.app:create_app", settings.port, settings.workers)
    store.close()
    return 0


def main(argv) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        settings = Settings.from_environment()
    except ValueError as error:
        print(f"configuration invalid: environment: {str(error).split('=')[0]}: {error}", file=sys.stderr)
        return 2
    entries = validate(settings)
    if "--check" in argv:
        print(f"configuration valid: {len(entries)} parameters in {settings.environments_dir}")
        return 0
    try:
        settings = settings.with_passwords()
    except ValueError as error:
        print(f"configuration invalid: secrets: {error}", file=sys.stderr)
        return 2
    return serve(settings, entries)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
