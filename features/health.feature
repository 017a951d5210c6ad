@section_5
Feature: 5. Database connection health checks
  Docker's healthchecks are the stack's health: they must prove real readiness, fail when the
  service does not answer, run often enough for a quick start and seldom enough for 2 cores.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_5_1
  Scenario: PostgreSQL health monitoring
    Then the "postgres" service reports Docker health status "healthy"
    And the "postgres" container runs the healthcheck docker-compose.yml declares
    And the "postgres" healthcheck fails where no server is running

  @checklist_5_2
  Scenario: Redis health monitoring
    Then the "redis" service reports Docker health status "healthy"
    And the "redis" container runs the healthcheck docker-compose.yml declares
    And the "redis" healthcheck fails where no server is running

  @checklist_5_3
  Scenario: Connection timeout handling
    Then every healthcheck gives up after at most 5 s, well within its interval

  @checklist_5_3 @changes_stack @paused_databases
  Scenario: Connection timeout handling: clients give up on paused databases, which come back by themselves
    When the "redis" and "postgres" containers are paused
    Then a Redis client gives up within 3 s with a timeout error
    And a PostgreSQL client gives up within 3 s with a timeout error
    And the registry's health answers 503 naming Redis within 5 s, without hanging
    When the paused containers are unpaused
    Then Redis and PostgreSQL answer again and Docker reports them healthy, without a restart, and the services that use them are healthy again

  @checklist_5_4
  Scenario: Service startup dependencies
    Then every dependency between services waits for the dependency to be healthy
    And no service started before the services it depends on were healthy

  @checklist_5_5
  Scenario: Health check intervals
    Then every healthcheck probes every 10 to 30 s once the service is healthy
    And every healthcheck probes at least every 1 s during a start period of at least 5 s

  @checklist_5_6
  Scenario: Health check validation script
    Then the operator's validate command passes for the "bdd_healthy" scenarios

  @checklist_5_6 @changes_stack @validate_fails
  Scenario: Health check validation script: it fails, naming the service, when a healthcheck fails
    When the "redis" healthcheck starts failing
    Then the operator's validate command fails for the "bdd_healthy" scenarios, naming "redis"

  @checklist_5_7
  Scenario: Cross-service connectivity
    Then from inside every service's container, "redis" on port 6379 and "postgres" on port 5432 answer by name
