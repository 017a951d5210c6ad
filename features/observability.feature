@section_7
Feature: 7. Enhanced observability
  Prometheus (Debian's package) scrapes every service that serves metrics: itself, Redis and
  PostgreSQL through their exporters (as the read-only monitor), the registry and the configuration
  service; its alert rules are unit-tested and one is seen firing. Grafana, Jaeger and the
  OpenTelemetry Collector are pinned upstream images in the `telemetry` profile: their configuration
  files are checked in every run; what needs them running is reported "not run", with the reason,
  where their images cannot be pulled.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_7_1
  Scenario: Prometheus metrics collection
    Then the "prometheus" service publishes port 9090 on 127.0.0.1 only, at host port PROMETHEUS_HOST_PORT
    And Prometheus answers healthy and ready
    And Prometheus scrapes the jobs "prometheus", "redis", "postgres", "alertmanager", "service-registry" and "configuration-service", every target up
    And Prometheus refuses its admin and lifecycle APIs

  @checklist_7_5
  Scenario: Monitoring service integration
    Then Prometheus holds series from every service:
      | job                   | series                          |
      | prometheus            | prometheus_tsdb_head_series     |
      | redis                 | redis_memory_used_bytes         |
      | postgres              | pg_stat_database_numbackends    |
      | service-registry      | registry_instances              |
      | configuration-service | config_requests_total           |
    And the exporters are logged in: "redis_up" and "pg_up" are 1
    And the registry's probes of "redis", "postgres", "service-registry" and "configuration-service" are 1 in "registry_infrastructure_healthy"

  @checklist_7_7
  Scenario: Alerting configuration
    Then Prometheus has loaded the alerts "Watchdog", "InstanceDown", "RedisUnreachable", "PostgresUnreachable", "RedisMemoryHigh", "PostgresConnectionsHigh", "ServiceErrorRate" and "InfrastructureServiceUnhealthy"
    And promtool, inside the Prometheus container, finds its configuration valid and passes the alert rules' unit tests
    And amtool, inside the Alertmanager container, finds its configuration valid and routes each alert of the route tests to its receiver
    And Prometheus sends its alerts to "alertmanager" as its active Alertmanager
    And the always-firing "Watchdog" alert reaches the alert receiver through the "watchdog" route: a notification received within the last 120 s
    And no alert but "Watchdog" is pending or firing for the healthy stack's own services

  @checklist_7_7 @changes_stack @alert_fires
  Scenario: Alerting configuration: alerts fire when the configuration service stops
    When the configuration service is stopped
    Then Prometheus shows the "InstanceDown" alert for job "configuration-service" pending or firing within 30 s
    And Prometheus shows the "InfrastructureServiceUnhealthy" alert for service "configuration-service" pending or firing within 30 s
    And the alert receiver gets the firing "InstanceDown" notification for service "configuration-service" through the "critical" route, with the service's labels, within 120 s of the stop
    And Alertmanager holds "InfrastructureServiceUnhealthy" for service "configuration-service" inhibited by "InstanceDown" within 60 s
    When the configuration service is started again
    Then the "InstanceDown" alert for job "configuration-service" is gone within 30 s
    And the alert receiver gets the resolved "InstanceDown" notification for service "configuration-service" through the "critical" route within 120 s of the start

  @checklist_7_2 @grafana_files
  Scenario: Grafana visualization: datasources provisioned from files
    Then Grafana's provisioned datasources point at the stack's services: "Prometheus" at "prometheus" on the port Prometheus listens on, "Jaeger" at "jaeger" on Jaeger's query port
    And Grafana reads its admin password from its secret file and downloads nothing at start

  @checklist_7_2 @telemetry
  Scenario: Grafana visualization: Grafana runs and its datasources are healthy
    Given the "grafana" service of the telemetry profile is running
    Then Grafana's health API answers ok on 127.0.0.1 at host port GRAFANA_HOST_PORT
    And Grafana reports the "prometheus" datasource healthy

  @checklist_7_3 @jaeger_files
  Scenario: Jaeger distributed tracing: configuration
    Then Jaeger's pipelines name only components its configuration defines
    And Jaeger receives OTLP over gRPC and HTTP and serves queries on the port docker-compose.yml publishes

  @checklist_7_3 @telemetry
  Scenario: Jaeger distributed tracing: a span sent to the collector is found in Jaeger
    Given the "otel-collector" service of the telemetry profile is running
    And the "jaeger" service of the telemetry profile is running
    When a span is sent to the collector over OTLP/HTTP
    Then Jaeger's query API finds the span's trace within 20 s

  @checklist_7_4 @collector_files
  Scenario: OpenTelemetry collector: configuration
    Then the collector's pipelines name only components its configuration defines
    And the collector sends traces over OTLP to "jaeger" on the port Jaeger receives OTLP gRPC on
    And the collector's health extension listens on the port docker-compose.yml publishes
    And Prometheus is configured to scrape the collector's own metrics port

  @checklist_7_4 @telemetry
  Scenario: OpenTelemetry collector: healthy and scraped
    Given the "otel-collector" service of the telemetry profile is running
    Then the collector's health extension answers on 127.0.0.1 at host port OTEL_HEALTH_HOST_PORT
    And Prometheus scrapes the jobs "otel-collector", every target up

  @checklist_7_6 @dashboard_queries
  Scenario: Pre-configured dashboards: the dashboard's queries work on this Prometheus
    Then Grafana provisions the "Infrastructure overview" dashboard from the folder docker-compose.yml mounts
    And the dashboard has panels for "Redis memory", "Redis operations", "Redis evictions", "PostgreSQL connections", "PostgreSQL transactions", "PostgreSQL database size", "Registry instances", "Registry registrations", "Registry latency (p99)", "Configuration reads", "Configuration writes" and "Configuration versions"
    And every query of the dashboard names only series that Prometheus holds, and Prometheus evaluates it

  @checklist_7_6 @telemetry
  Scenario: Pre-configured dashboards: Grafana has provisioned the dashboard
    Given the "grafana" service of the telemetry profile is running
    Then Grafana lists the "Infrastructure overview" dashboard
