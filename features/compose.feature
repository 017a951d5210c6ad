@section_3
Feature: 3. Docker Compose orchestration with proper networking
  Checked over every service docker-compose.yml declares, so that services added later are held to
  the same rules as Redis and PostgreSQL.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_3_1
  Scenario: Docker Compose V2 configuration
    Then docker-compose.yml validates with "docker compose config" without a warning
    And docker-compose.yml names its project "trading-ecosystem" and has no "version" key

  @checklist_3_2
  Scenario: Service networking
    Then the stack network is a bridge network with the declared subnet and gateway
    And every service of the stack network is at its declared address there
    And every service reaches every other service it shares a network with, by name

  @checklist_3_3
  Scenario: Port mappings
    Then every published port is bound to 127.0.0.1 only, at its declared host port
    And every published port answers on 127.0.0.1

  @checklist_3_4
  Scenario: Service dependencies
    Then every dependency between services waits for the dependency to be healthy
    And no service started before the services it depends on were healthy

  @checklist_3_5
  Scenario: Container naming
    Then every container is named after its compose project, service and number
    And no service fixes its container name

  @checklist_3_6
  Scenario: Resource limits
    Then every running container has a memory limit and a CPU limit

  @checklist_3_7
  Scenario: Restart policies
    Then every running container restarts unless stopped by hand

  @checklist_3_7 @changes_stack @redis_crash
  Scenario: Restart policies: Redis restarted after its server process dies
    When the Redis server process is killed
    Then Docker restarts the "redis" container and it is healthy again within its healthcheck budget
