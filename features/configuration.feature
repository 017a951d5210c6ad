@section_6
Feature: 6. Basic configuration service for endpoints and parameters
  Sibling services read their parameters and the stack's endpoints from the configuration service
  at http://localhost:8090. It keeps them in PostgreSQL per environment, refuses to start on an
  invalid environment file and announces every change on Redis.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_6_1
  Scenario: Configuration storage
    Then the "configuration-service" service is at address 0.35 on the stack network
    And the "configuration-service" service waits for "postgres" to be healthy before it starts
    And the tables of the "config" schema belong to the "config_service" role, which is not a superuser
    And every parameter of the environment files is a row of config.parameters

  @checklist_6_2
  Scenario: Service endpoint configuration
    Then the configuration service gives the "development" endpoints of "redis", "postgres", "service_registry" and "configuration_service"
    And every endpoint it gives names a service of the stack on a port that service listens on
    And no endpoint it gives carries credentials

  @checklist_6_3
  Scenario: Parameter management
    Given a parameter created through the configuration API with type "number" and value "42"
    When the parameter is changed to "43" with its current version
    Then reading the parameter gives value "43" at version 2
    And its history records "42" replaced by "43" at version 2
    And a change sent with the old version is refused with 412, and the value stays "43"
    And values that do not parse as their type are refused with 422 naming the problem:
      | key                   | type    | value |
      | acceptance.bad_number | number  | lots  |
      | acceptance.bad_flag   | boolean | maybe |
      | acceptance.bad_json   | json    | {"a": |
      | 9starts.with.a.digit  | string  | x     |
    When the parameter is deleted
    Then reading the parameter answers 404 and its history records the deletion

  @checklist_6_4
  Scenario: Configuration API
    Then the "configuration-service" service publishes port 8090 on 127.0.0.1 only, at host port CONFIG_HOST_PORT
    And the configuration service's OpenAPI document lists the paths sibling services call
    And "trading.order_rate_limit_per_second" reads the same by path and by query, with its value as a string
    And the configuration service's health reports PostgreSQL and Redis healthy

  @checklist_6_5
  Scenario: Environment-specific configuration
    Then "trading.order_rate_limit_per_second" is different in "development" and "production"
    And the environments "dev", "test" and "prod" are read as "development", "testing" and "production"
    And a service-specific parameter of "development" overrides the environment-wide one for that service only

  @checklist_6_6
  Scenario: Configuration validation on startup
    Then the running configuration service's environment files pass its own startup check
    And the configuration service refuses to start on each of these "development" files, logging file, key and reason:
      | key                         | type   | value                      | reason    |
      | risk.max_position_usd       | number | lots                       | number    |
      | features.paper_trading      | yesno  | true                       | type      |
      | 9starts.with.a.digit        | string | x                          | key       |
      | endpoints.redis             | string | redis://admin:pw@redis:6379 | credential |

  @checklist_6_7 @long_polls
  Scenario: Runtime configuration updates
    Given a parameter created through the configuration API with type "string" and value "before"
    And "risk-monitor" has read the parameter by path, by query and with X-Service-Name: "before"
    And a client waiting for the parameter's next version
    And a subscriber to the Redis channel "config:changes" as "config-service"
    When the parameter is changed to "after" with its current version
    Then reading the parameter gives value "after" at version 2
    And "risk-monitor"'s next reads, by path, by query and with X-Service-Name, give "after" at version 2
    And the waiting client is woken within 2 s with value "after" at version 2
    And "config:changes" announces the parameter's key, environment and version 2
