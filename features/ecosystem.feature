@section_E @development_only
Feature: E. The ecosystem's services connect (extra, beyond the milestone)
  The next milestones plug the ecosystem's own services into this stack, unchanged: each connects
  with the credentials, key namespaces, schema and environment name its code uses (read from the
  sk-quantfidential repositories, not their READMEs), and is discovered the way its code registers.
  A foreign or malformed entry never takes a shared service down. Every probe key and service name
  is the scenario's own ("acceptance-…"), so a real service running alongside is never touched;
  E.8's stand-ins, which register under the services' own names, change the stack (never in attach mode).
  Development mode only: production mode refuses the published passwords and plain connections.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_E_1 @registry_keys
  Scenario: risk-monitor-py connects and is discovered
    Then Redis user "risk-adapter" signs in with the password risk-monitor-py defaults to
    And Redis user "risk-adapter" runs what risk-monitor-py's code runs on its own keys:
      | keys                             | commands                         |
      | registry:services:risk-monitor*  | PING, HSET, EXPIRE, HGETALL, DEL |
    And Redis user "risk-adapter" is refused the keys of another domain under "exchange:" and "registry:services:exchange-simulator"
    And PostgreSQL role "risk_adapter" signs in with the password risk-monitor-py defaults to, lands in schema "risk" and creates a table there
    When risk-monitor-py registers as its code does: its own hash in Redis as "risk-adapter", and a POST to the registry signed in as that user
    Then the registry lists it, returns its registrations by name and reports it in its health, every endpoint answering 200
    When its heartbeat leaves behind a hash with only "last_heartbeat" after the entry expired
    Then every registry endpoint still answers 200, the registry stays healthy and counts the entry unreadable
    And the configuration reads of risk-monitor-py answer with the fields its client parses:
      | request                                                                 | fields           |
      | GET /api/v1/configuration?key=risk.max_position_usd&environment=docker  | key, value, type |
      | GET /api/v1/configuration?key=risk.max_position_usd                     | key, value, type |

  @checklist_E_2 @registry_keys
  Scenario: trading-engine-py connects and is discovered
    Then Redis user "trading-adapter" signs in with the password trading-engine-py defaults to
    And Redis user "trading-adapter" runs what trading-engine-py's code runs on its own keys:
      | keys                                      | commands                         |
      | registry:services:trading-system-engine*  | PING, HSET, EXPIRE, HGETALL, DEL |
    And Redis user "trading-adapter" is refused the keys of another domain under "risk:" and "registry:services:risk-monitor"
    And PostgreSQL role "trading_adapter" signs in with the password trading-engine-py defaults to, lands in schema "trading" and creates a table there
    When trading-engine-py registers as its code does: its own hash in Redis as "trading-adapter"
    Then the registry lists it, returns its registrations by name and reports it in its health, every endpoint answering 200
    And the configuration reads of trading-engine-py answer with the fields its client parses:
      | request                                                   | fields           |
      | GET /api/v1/configuration/trading.order_rate_limit_per_second | key, value, type |

  @checklist_E_3
  Scenario: test-coordinator-py connects
    Then Redis user "test-coordinator-adapter" signs in with the password test-coordinator-py defaults to
    And Redis user "test-coordinator-adapter" runs what test-coordinator-py's code runs on its own keys:
      | keys                        | commands                         |
      | services:test-coordinator*  | PING, HSET, EXPIRE, HGETALL, SCAN |
    And Redis user "test-coordinator-adapter" is refused the keys of another domain under "audit:" and "services:risk-monitor"
    And PostgreSQL role "test_coordinator_adapter" signs in with the password test-coordinator-py defaults to, lands in schema "test_coordination" and creates a table there
    And the configuration reads of test-coordinator-py answer with the fields its client parses:
      | request                                                            | fields           |
      | GET /api/v1/configuration/features.paper_trading?environment=docker | key, value, type |

  @checklist_E_4 @registry_keys
  Scenario: The Go data adapters connect
    Then each data adapter signs in to Redis and PostgreSQL with the passwords its repository defaults to, and runs what its code runs on its own keys:
      | adapter                     | redis user          | keys                     | commands                                   | role                | schema      |
      | market-data-data-adapter-go | market-data-adapter | market_data:*            | PING, SET, GET, EXISTS, EXPIRE, DEL        | market_data_adapter | market_data |
      | market-data-data-adapter-go | market-data-adapter | market_data:service:*    | SET, GET, EXPIRE, DEL                      | market_data_adapter | market_data |
      | exchange-data-adapter-go    | exchange-adapter    | exchange:*               | PING, SET, GET, EXISTS, EXPIRE, DEL        | exchange_adapter    | exchange    |
      | custodian-data-adapter-go   | custodian-adapter   | custodian:*              | PING, SET, GET, EXISTS, EXPIRE, DEL        | custodian_adapter   | custodian   |
      | audit-data-adapter-go       | audit-adapter       | audit:*                  | PING, SET, GET, TTL, DBSIZE, MEMORY USAGE, DEL | audit_adapter   | audit       |
    And each data adapter's Redis user is refused another domain's keys:
      | redis user          | other keys     |
      | market-data-adapter | exchange:*     |
      | exchange-adapter    | market_data:*  |
      | custodian-adapter   | trading:*      |
      | audit-adapter       | custodian:*    |

  @checklist_E_5
  Scenario: The ecosystem's services deploy beside the stack as the orchestrator deploys them
    Then docker-compose.yml with docker-compose.ecosystem.yml and .env.example makes a valid compose model that holds every service of the orchestrator's compose at its address and host ports:
      | service               | address | host ports  |
      | audit-correlator      | 80      | 8082, 50052 |
      | custodian-simulator   | 81      | 8083, 50053 |
      | exchange-simulator    | 82      | 8084, 50054 |
      | market-data-simulator | 84      | 8085, 50055 |
      | risk-monitor          | 85      | 8086, 50056 |
      | trading-system-engine | 86      | 8087, 50057 |
      | test-coordinator      | 87      | 8088, 50058 |
    And in that model, telemetry profile included, no address and no host port is named twice, and the stack publishes neither port the milestone document gives audit-correlator: 8083 and 9093
    And in that model every ecosystem service's settings name this stack: REDIS_URL Redis's address, POSTGRES_URL PostgreSQL's, SERVICE_REGISTRY_URL and CONFIG_SERVICE_URL the registry's, OTEL_EXPORTER_ENDPOINT Jaeger's

  @checklist_E_6
  Scenario: The ecosystem's configuration reads are answered at CONFIG_SERVICE_URL
    When each service reads a parameter as its code does, from its own address on the ecosystem's network, at CONFIG_SERVICE_URL, the registry's address:
      | service                | from | request                                                               | header                             | answer shape           |
      | audit-correlator-go    | 80   | /api/v1/configuration/risk.max_position_usd                           |                                    | flat                   |
      | custodian-simulator-go | 81   | /configuration?key=risk.max_position_usd                              | Accept: application/json           | flat, type as a number |
      | exchange-simulator-go  | 82   | /api/v1/configuration/risk.max_position_usd                           | X-Service-Name: exchange-simulator | envelope               |
      | risk-monitor-py        | 85   | /api/v1/configuration?key=risk.max_position_usd&environment=docker    |                                    | flat                   |
      | trading-engine-py      | 86   | /api/v1/configuration/trading.order_rate_limit_per_second             |                                    | flat                   |
      | test-coordinator-py    | 87   | /api/v1/configuration/features.paper_trading?environment=docker       |                                    | flat                   |
    Then every read is answered 200 in the shape that service's client parses, with the value the configuration service itself answers

  @checklist_E_7 @registry_keys
  Scenario: The Go services' own registrations are discovered
    When each Go service registers as its code does, a JSON entry with a TTL, signed in to Redis as its own user:
      | service               | redis user          | layout                             |
      | audit-correlator      | audit-adapter       | services:{name}:{id}               |
      | custodian-simulator   | custodian-adapter   | services:{name}:{host}:{grpc port} |
      | market-data-simulator | market-data-adapter | services:{name}:{id}               |
      | exchange-simulator    | exchange-adapter    | {namespace}:service:{id}           |
    Then Redis announces every change of those keys to the registry, which listens
    And the registry returns each by name within 1 s of its write, the age its answers may have
    And each of those Redis users is refused the registration keys of the others
    When each deletes its own entry
    Then the registry stops returning each within 1 s, the age its answers may have
    When each registers again with a TTL of 2 s, left to run out
    Then the registry stops returning each within 1 s of its TTL's end, having returned it before

  @checklist_E_8 @changes_stack @registered_service_down
  Scenario: Prometheus scrapes the ecosystem's services as they register, and alerts when one stops answering
    When stand-ins of the ecosystem's services serve their health and metrics paths at their addresses and register as their code does:
      | service               | address | redis user        | layout                             | metrics path    |
      | audit-correlator      | .80     | audit-adapter     | services:{name}:{id}               | /metrics        |
      | custodian-simulator   | .81     | custodian-adapter | services:{name}:{host}:{grpc port} | /metrics        |
      | exchange-simulator    | .82     | exchange-adapter  | {namespace}:service:{id}           | /metrics        |
      | trading-system-engine | .86     | trading-adapter   | registry:services:{name}           | /api/v1/metrics |
    Then Prometheus scrapes each at its address and metrics path, its job the service's name, within 20 s
    When the stand-in of "audit-correlator" stops answering, its registration left in place
    Then Prometheus shows the "InstanceDown" alert for job "audit-correlator" pending or firing within 20 s
    When every stand-in deregisters
    Then Prometheus scrapes none of them within 20 s
    And the "InstanceDown" alert for job "audit-correlator" is gone within 20 s
