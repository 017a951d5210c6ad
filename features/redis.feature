@section_1
Feature: 1. Redis deployment for service discovery and caching
  Redis holds the service registry and the domains' caches. Every client signs in as an ACL user
  confined to its own keys; the checks below ask the running server, not its files.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_1_1
  Scenario: Redis Docker service definition
    Then the "redis" service is at address 0.10 on the stack network
    And the "redis" service publishes port 6379 on 127.0.0.1 only, at host port REDIS_HOST_PORT
    And the "redis" service keeps /data on the named volume "redis-data"

  @checklist_1_2
  Scenario: Redis configuration file
    Then the running Redis has "appendonly" set to "yes"
    And the running Redis has "protected-mode" set to "yes"
    And the running Redis has "aclfile" set to "/run/secrets/users.acl"

  @checklist_1_3
  Scenario: Redis ACL user management
    Then Redis refuses the default user
    And Redis has exactly these users, each signing in with its own password:
      | user                     |
      | admin                    |
      | healthcheck              |
      | monitor                  |
      | registry-service         |
      | config-service           |
      | config-editor            |
      | config-editor-production |
      | market-data-adapter      |
      | exchange-adapter         |
      | custodian-adapter        |
      | risk-adapter             |
      | trading-adapter          |
      | test-coordinator-adapter |
      | audit-adapter            |
    And each domain user writes its own key prefix and is refused another domain's:
      | user                     | own prefix        | other prefix      |
      | market-data-adapter      | market-data:      | exchange:         |
      | exchange-adapter         | exchange:         | custodian:        |
      | custodian-adapter        | custodian:        | risk:             |
      | risk-adapter             | risk:             | trading:          |
      | trading-adapter          | trading:          | test-coordinator: |
      | test-coordinator-adapter | test-coordinator: | audit:            |
      | audit-adapter            | audit:            | market-data:      |
    And no user but admin may run FLUSHALL, CONFIG, KEYS or DEBUG
    And the ACL file the running Redis loaded stores password hashes only

  @checklist_1_4
  Scenario: Redis service discovery storage
    Then the "registry-service" user stores a service instance under "registry:services:" with a TTL and finds it with SCAN
    And the "registry-service" user is refused keys under "config:"
    And the "market-data-adapter" user is refused the registry's keys
    And the "config-service" user may publish on "config:changes" but not on "registry:events"

  @checklist_1_5
  Scenario: Redis caching configuration
    Then the running Redis has a maxmemory of 4 GiB
    And the running Redis evicts keys with the "allkeys-lfu" policy

  @checklist_1_6
  Scenario: Redis health checks
    Then the "redis" service reports Docker health status "healthy"
    And the "redis" healthcheck passes with the "healthcheck" user's password
    And the "redis" healthcheck fails, signing in as "healthcheck", when Redis refuses that password

  @checklist_1_7
  Scenario: Redis connectivity validation
    Then the "healthcheck" user may run PING and INFO but nothing else
    And the "registry-service" user answers PING from the host
    And inside the network, "redis" answers PING by name as the "healthcheck" user
