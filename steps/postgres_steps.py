"""Steps about PostgreSQL: settings, schemas, roles and what each may do, read from the running server."""
from __future__ import annotations

from pytest_bdd import parsers, then

from steps.domains import DOMAIN_ROLES, DOMAIN_SCHEMAS
from steps.expect import Mismatches, expect
from steps.probes import container_exec, container_state, postgres_server
from steps.service_checks import expect_named_volume

UNITS = {"kB": 2**10, "MB": 2**20, "GB": 2**30}
# Settings and catalogs are read as the monitoring role (pg_monitor reads every setting): the
# superuser signs in on the Unix socket only, which the steps use just for what only it may read.
READER = "monitor"


@then(parsers.parse('the running PostgreSQL reads its settings from "{path}"'))
def _config_file(stack, evidence, path):
    fact = evidence.record(postgres_server.setting(*stack.postgres(READER), "config_file"))
    expect(fact.observed == path, "PostgreSQL config_file", path, fact.observed, fact,
           "is infra/postgres/postgresql.conf mounted and passed as config_file?")


@then(parsers.parse('the running PostgreSQL has "{name}" set to "{value}"'))
def _pg_setting(stack, evidence, name, value):
    fact = evidence.record(postgres_server.setting(*stack.postgres(READER), name))
    expect(fact.observed == value, f"PostgreSQL {name}", value, fact.observed, fact,
           "see infra/postgres/postgresql.conf")


@then(parsers.parse('the running PostgreSQL\'s shared_buffers fit in a quarter of the "{service}" memory limit'))
def _shared_buffers(stack, evidence, service):
    fact = evidence.record(postgres_server.setting(*stack.postgres(READER), "shared_buffers"))
    value = fact.observed
    number = value.rstrip("kMGB")
    buffers = int(number) * UNITS[value[len(number):]]
    limit_fact = evidence.record(container_state.host_config(stack.project, service))
    limit = limit_fact.observed["memory_bytes"]
    expect(limit > 0 and buffers <= limit // 4, "shared_buffers against the memory limit",
           f"<= {limit // 4 // 2**20} MiB (a quarter of {limit // 2**20} MiB)", value, fact,
           "size shared_buffers in infra/postgres/postgresql.conf to the container's limit")


@then("no pg_hba rule of the running PostgreSQL trusts a TCP connection")
def _no_trust(stack, evidence):
    fact = evidence.record(postgres_server.hba_rules(*stack.postgres_superuser_on_socket()))
    trusted = [rule for rule in fact.observed if rule[0].startswith("host") and rule[1] == "trust"]
    expect(not trusted, "pg_hba rules over TCP with trust", "none", trusted, fact,
           "use scram-sha-256 in infra/postgres/pg_hba.conf")


@then(parsers.parse('the database "{dbname}" exists'))
def _database_exists(stack, evidence, dbname):
    fact = evidence.record(postgres_server.query(*stack.postgres(READER), "SELECT datname FROM pg_database"))
    names = sorted(row[0] for row in fact.observed)
    expect(dbname in names, "databases", dbname, names, fact, "POSTGRES_DB in docker-compose.yml")


@then("PostgreSQL has these login roles:")
def _roles(stack, evidence, datatable):
    wanted = {row[0] for row in datatable[1:]}
    fact = evidence.record(postgres_server.login_roles(*stack.postgres(READER)))
    missing = sorted(wanted - fact.observed)
    expect(not missing, "login roles", sorted(wanted), f"missing {missing}", fact,
           "see infra/postgres/init/01-init-schemas.sql (it runs on an empty data directory only)")


@then("the function public.health_check() exists")
def _health_function(stack, evidence):
    sql = "SELECT to_regprocedure('public.health_check()') IS NOT NULL"
    fact = evidence.record(postgres_server.query(*stack.postgres(READER), sql))
    expect(fact.observed == [(True,)], "public.health_check()", "exists", "missing", fact)


@then("the database has these domain schemas, each owned by its role and described by a comment:")
def _schemas(stack, evidence, datatable):
    fact = evidence.record(postgres_server.schemas(*stack.postgres(READER)))
    problems = Mismatches("domain schemas", "see infra/postgres/init/01-init-schemas.sql")
    for schema, role in datatable[1:]:
        found = fact.observed.get(schema)
        problems.check(found is not None and found["owner"] == role and bool(found["comment"]),
                       f"{schema} owned by {role} with a comment", found, fact)
    problems.raise_any()


@then("each domain role creates tables in its own schema and is refused in another domain's:")
def _schema_rights(stack, evidence, datatable):
    problems = Mismatches("domain roles' schema rights", "each role has rights on its own schema only")
    for role, own, other in datatable[1:]:
        mine = evidence.record(postgres_server.create_table(*stack.postgres(role), own))
        problems.check(mine.observed.allowed, f"{role} creates a table in {own}", mine.observed.reply, mine)
        theirs = evidence.record(postgres_server.create_table(*stack.postgres(role), other))
        problems.check(not theirs.observed.allowed and theirs.observed.reply.startswith("42501"),
                       f"{role} refused in {other} (42501 insufficient privilege)", theirs.observed.reply, theirs)
    problems.raise_any()


@then(parsers.parse('the "{role}" role is refused table creation in every domain schema'))
def _read_only(stack, evidence, role):
    problems = Mismatches(f"{role} is read-only")
    for schema in DOMAIN_SCHEMAS:
        fact = evidence.record(postgres_server.create_table(*stack.postgres(role), schema))
        problems.check(not fact.observed.allowed, f"{role} refused in {schema}", fact.observed.reply, fact)
    problems.raise_any()


@then(parsers.parse('the "{service}" healthcheck passes over TCP with the Unix socket out of reach'))
def _pg_healthcheck_tcp(stack, evidence, service):
    # libpq falls back to PGHOST when no -h is given: pointing it at an empty directory puts the
    # Unix socket out of reach, so only a healthcheck that goes over TCP still passes.
    fact = evidence.record(container_exec.run_healthcheck(stack.project, service, {"PGHOST": "/nonexistent"}))
    expect(fact.observed.exit_code == 0, f"{service} healthcheck without the Unix socket", "exit 0",
           fact.observed, fact, "probe over TCP (-h 127.0.0.1): the init server listens on the socket only")


@then(parsers.parse('every domain role and the monitor role log in to "{dbname}" from the host with their own '
                    'passwords'))
def _logins(stack, evidence, dbname):
    problems = Mismatches("logins over TCP", "passwords come from PG_PASSWORD_* in the env file")
    roles = [*DOMAIN_ROLES, "monitor"]
    for role in roles:
        fact = evidence.record(postgres_server.login(*stack.postgres(role, dbname)))
        problems.check(fact.observed.allowed and fact.observed.reply == role, f"{role} logged in",
                       fact.observed.reply, fact)
    problems.raise_any()


@then("PostgreSQL refuses a wrong password from the host")
def _wrong_password(stack, evidence):
    port, role, _, dbname = stack.postgres("monitor")
    fact = evidence.record(postgres_server.login(port, role, "not-the-password", dbname))
    expect(not fact.observed.allowed and "password authentication failed" in fact.observed.reply,
           "login with a wrong password", "password authentication failed", fact.observed.reply, fact,
           "no trust rule in infra/postgres/pg_hba.conf")


@then(parsers.parse('PostgreSQL accepts the "{role}" role from the host'))
def _accepts_role(stack, evidence, role):
    fact = evidence.record(postgres_server.login(*stack.postgres(role)))
    expect(fact.observed.allowed, f"{role} login on 127.0.0.1:{stack.postgres_port()}", "accepted",
           fact.observed.reply, fact)


@then(parsers.parse('health_check() reports "{status}" with the server version and the seven domain schemas'))
def _health_check_call(stack, evidence, status):
    fact = evidence.record(postgres_server.health_check(*stack.postgres("monitor")))
    report = fact.observed
    expected = {"status": status, "schemas": sorted(DOMAIN_SCHEMAS)}
    observed = {"status": report.get("status"), "schemas": report.get("schemas")}
    expect(observed == expected and "PostgreSQL 17" in str(report.get("version")), "public.health_check()",
           {**expected, "version": "PostgreSQL 17.x"}, report, fact)


@then(parsers.parse('the PostgreSQL data directory is on the named volume "{volume}"'))
def _data_on_volume(stack, evidence, volume):
    directory = evidence.record(postgres_server.setting(*stack.postgres(READER), "data_directory")).observed
    expect_named_volume(stack, evidence, "postgres", directory, volume)
