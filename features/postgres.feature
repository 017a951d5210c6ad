@section_2
Feature: 2. PostgreSQL deployment for persistent data storage
  PostgreSQL holds each domain's data in its own schema of the trading_ecosystem database, owned by
  the login role that domain's adapter connects as.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_2_1
  Scenario: PostgreSQL Docker service definition
    Then the "postgres" service is at address 0.20 on the stack network
    And the "postgres" service publishes port 5432 on 127.0.0.1 only, at host port POSTGRES_HOST_PORT
    And the "postgres" service has at least 256 MiB of shared memory

  @checklist_2_2
  Scenario: PostgreSQL configuration file
    Then the running PostgreSQL reads its settings from "/etc/postgresql/custom/postgresql.conf"
    And the running PostgreSQL has "logging_collector" set to "off"
    And the running PostgreSQL has "password_encryption" set to "scram-sha-256"
    And the running PostgreSQL's shared_buffers fit in a quarter of the "postgres" memory limit
    And no pg_hba rule of the running PostgreSQL trusts a TCP connection

  @checklist_2_3
  Scenario: Database initialization scripts
    Then the database "trading_ecosystem" exists
    And PostgreSQL has these login roles:
      | role                     |
      | market_data_adapter      |
      | exchange_adapter         |
      | custodian_adapter        |
      | risk_adapter             |
      | trading_adapter          |
      | test_coordinator_adapter |
      | audit_adapter            |
      | monitor                  |
    And the function public.health_check() exists

  @checklist_2_4
  Scenario: Domain-specific schemas
    Then the database has these domain schemas, each owned by its role and described by a comment:
      | schema            | role                     |
      | market_data       | market_data_adapter      |
      | exchange          | exchange_adapter         |
      | custodian         | custodian_adapter        |
      | risk              | risk_adapter             |
      | trading           | trading_adapter          |
      | test_coordination | test_coordinator_adapter |
      | audit             | audit_adapter            |
    And each domain role creates tables in its own schema and is refused in another domain's:
      | role                     | own schema        | other schema      |
      | market_data_adapter      | market_data       | exchange          |
      | exchange_adapter         | exchange          | custodian         |
      | custodian_adapter        | custodian         | risk              |
      | risk_adapter             | risk              | trading           |
      | trading_adapter          | trading           | test_coordination |
      | test_coordinator_adapter | test_coordination | audit             |
      | audit_adapter            | audit             | market_data       |
    And the "monitor" role is refused table creation in every domain schema

  @checklist_2_5
  Scenario: PostgreSQL health checks
    Then the "postgres" service reports Docker health status "healthy"
    And the "postgres" healthcheck passes over TCP with the Unix socket out of reach

  @checklist_2_6
  Scenario: Database connectivity validation
    Then every domain role and the monitor role log in to "trading_ecosystem" from the host with their own passwords
    And PostgreSQL refuses a wrong password from the host
    And health_check() reports "healthy" with the server version and the seven domain schemas

  @checklist_2_7
  Scenario: Persistent volume configuration
    Then the PostgreSQL data directory is on the named volume "postgres-data"
