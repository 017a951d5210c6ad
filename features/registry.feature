@section_4
Feature: 4. Service registry schema and APIs
  Sibling services register with the registry and find each other through it; the registry keeps
  the stack's own services' status current by probing them every few seconds.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_4_1
  Scenario: Service registry implementation
    When a sibling service registers with the payload it sends today
    Then the registry answers 201 with the stored instance
    And registering the same instance again answers 200
    And the registry forgets the instance when it deregisters: the next discovery of its name no longer returns it, and its name's index no longer holds it

  @checklist_4_2
  Scenario: Service discovery endpoints
    Given a sibling service registered with the registry
    Then the registry lists that service with its instance count and healthy count
    And the registry returns its instance with its endpoints
    And asking for its healthy instances returns it but not an unhealthy one, and an unknown service answers 404
    And its discovery still answers its instance beside 3000 keys a domain's cache wrote, and walks none of them: fewer SCANs than discoveries

  @checklist_4_3
  Scenario: Health status tracking
    Given the registry's latest probes of "redis", "postgres" and "service-registry"
    And a sibling service registered with a TTL of 2 s
    When it sends heartbeats for 4 s
    Then the registry still returns it
    When it sends no more heartbeats
    Then the registry stops returning it once its TTL lapses, and its heartbeat answers 404
    And the registry has probed "redis", "postgres" and "service-registry" again within 12 s of those probes and reports them healthy

  @checklist_4_3 @changes_stack @registry_outage
  Scenario: Health status tracking through an outage of PostgreSQL and Redis
    When PostgreSQL is stopped
    Then the registry reports "postgres" unhealthy within 15 s
    When PostgreSQL is started again
    Then the registry reports "postgres" healthy within 15 s
    When Redis is stopped
    Then the registry's health answers 503 naming Redis
    When Redis is started again
    Then the registry's health answers 200 within 15 s

  @checklist_4_4
  Scenario: Service registry Docker service
    Then the "service-registry" service is at address 0.30 on the stack network
    And the "service-registry" service publishes port 8080 on 127.0.0.1 only, at host port REGISTRY_HOST_PORT
    And the "service-registry" service reports Docker health status "healthy"
    And the "service-registry" service waits for "redis" to be healthy before it starts

  @checklist_4_5
  Scenario: Registry data storage
    Given a sibling service registered with the registry
    Then its instance is a Redis hash under "registry:services:" with a TTL, found with SCAN as "registry-service"
    And the "healthcheck" and "market-data-adapter" users are refused that instance's key
    And each domain user may write its own services' entries and nothing else under "registry:":
      | user                | own service            | other service |
      | risk-adapter        | risk-monitor           | exchange-simulator |
      | audit-adapter       | audit-correlator       | risk-monitor  |

  @checklist_4_6
  Scenario: Service registration schema
    Then the payload sibling services send registers as it is, with the fields they read
    And a registration with a bad name, a bad TTL and a bad endpoint is refused with 422 naming each field
    And a registration body over 64 KiB is refused with 413

  @checklist_4_7
  Scenario: Discovery API endpoints
    Then the registry's OpenAPI document lists its REST endpoints
    And an unknown path answers 404 in JSON
    And a cross-origin request from "http://localhost:3000" is allowed
    And the registry serves Prometheus metrics of its registrations and heartbeats
