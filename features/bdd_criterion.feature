@bdd_criterion
Feature: BDD criterion: Redis and PostgreSQL up and down with Docker, networked, discoverable, healthy
  Redis and PostgreSQL services can be brought up and down with Docker, with a docker network
  configured, and are discoverable and in good health.

  Background:
    Given the trading-ecosystem stack is up

  @bdd_brought_up
  Scenario: Redis and PostgreSQL are brought up with Docker
    Then the services "redis" and "postgres" each run one container of the stack's compose project

  @bdd_network
  Scenario: The docker network is configured with its subnet and addresses
    Then the stack network is a bridge network with the declared subnet and gateway
    And the "redis" service is at address 0.10 on the stack network
    And the "postgres" service is at address 0.20 on the stack network

  @bdd_discoverable
  Scenario: Redis and PostgreSQL are discoverable at their documented endpoints
    Then Redis answers PING from the host as the "healthcheck" user
    And PostgreSQL accepts the "monitor" role from the host
    And inside the network, "redis" on port 6379 and "postgres" on port 5432 answer by name
    And the registry reports "redis" and "postgres" healthy, with their endpoints

  @bdd_healthy
  Scenario: Redis and PostgreSQL are in good health
    Then every service of the stack reports Docker health status "healthy"
    And every service's own healthcheck passes when run now

  @bdd_stop_start @changes_stack
  Scenario: Stopped and started again with docker compose, Redis and PostgreSQL keep their data
    Given a row written to the "audit" schema as "audit_adapter"
    And a key written under "audit:" as "audit-adapter"
    When Redis and PostgreSQL are stopped and started again with docker compose
    Then the row is still in the "audit" schema
    And the key is still in Redis

  @bdd_down_up @changes_stack
  Scenario: Brought down and up again, Redis and PostgreSQL keep their data in their volumes
    Given a row written to the "audit" schema as "audit_adapter"
    And a key written under "audit:" as "audit-adapter"
    When the stack is brought down without removing its volumes
    And the stack is brought up again
    Then the row is still in the "audit" schema
    And the key is still in Redis

  @bdd_down_volumes @changes_stack @removes_volumes
  Scenario: Brought down with its volumes, the stack comes back empty
    Given a row written to the "audit" schema as "audit_adapter"
    When the stack is brought down with its volumes
    Then none of the stack's named volumes is left
    When the stack is brought up again
    Then the row is no longer in the "audit" schema
