@section_S
Feature: S. Security baseline (extra, beyond the milestone)
  The stack sits on a network that other services, and whoever else gets onto it, can reach: every
  write is signed in as the identity that makes it, and that identity may write only what is its
  own. Each scenario tries what an attacker on that network, or a careless change, would do, and
  expects it refused. Reads stay open: discovery and configuration are meant to be read by every
  service. One user keeps SCAN on purpose: test-coordinator-adapter, since test-coordinator-py's
  client lists its registrations with SCAN MATCH services:* (section E.3).

  Background:
    Given the trading-ecosystem stack is up

  @checklist_S_1
  Scenario: Registry writes are signed in as the service's own Redis user
    Then an anonymous registration is refused with 401 saying how to sign in, while reads need no sign-in
    And a registration signed in with a wrong password is refused with 401
    When "trading-adapter" registers a trading-engine instance, signed in as itself
    Then "risk-adapter", signed in as itself, is refused with 403 registering, renewing and removing that instance
    And "admin", signed in as itself, is refused with 403 registering "postgres", one of the stack's own services
    And a request to the registry whose Host is "attacker.example" is refused with 400
    And a request to the configuration service whose Host is "attacker.example" is refused with 400

  @checklist_S_2
  Scenario: Configuration writes are signed in, production by an editor of its own
    Then an anonymous configuration write is refused with 401 saying how to sign in, while reads need no sign-in
    And "config-editor", signed in as itself, is refused with 403 writing "risk.max_daily_loss_usd" in production
    When "config-editor-production", signed in as itself, writes a parameter in production claiming to be "someone-else"
    Then the parameter's history names "config-editor-production" as its author, not the claim

  @checklist_S_3
  Scenario: Request bodies are bounded, also when they stream without a Content-Length
    Then a 70 KiB body streamed in chunks, with no Content-Length, is refused with 413 by the registry and the configuration service

  @checklist_S_4
  Scenario: Containers hold only the privileges their program needs
    Then every container of the stack drops all capabilities, cannot gain privileges, has a read-only root filesystem, a pids limit and rotated logs
    And no process in any container of the stack runs as root

  @checklist_S_5
  Scenario: Redis users cannot list or read what is not theirs
    Then these Redis users are refused SCAN and RANDOMKEY, which list every domain's keys:
      | user                |
      | market-data-adapter |
      | exchange-adapter    |
      | custodian-adapter   |
      | risk-adapter        |
      | trading-adapter     |
      | audit-adapter       |
    And the "monitor" Redis user reads INFO and DBSIZE but is refused the keys of "registry:", "config:" and "risk:", and SCAN

  @checklist_S_6
  Scenario: PostgreSQL roles reach only their own
    Then the "postgres" superuser is refused over TCP, from the host and from inside the network, and signs in on the Unix socket
    And the "monitor" role is refused the "postgres" database over TCP
    And the "monitor" role reads the server's statistics but is refused the tables of every domain schema and of "config"
    And the registry probes PostgreSQL as "service_registry", a role that runs its health query and holds nothing more, and keeps no other role's password

  @checklist_S_7 @long_polls
  Scenario: Configuration long-polls and lists are bounded
    Then as many long-polls as one client may hold (CONFIG_MAX_WAITING_PER_CLIENT) wait their whole timeout, and one more is refused with 429 saying when to retry
    And a list asked for a page of 2 parameters answers that many, with where the next page starts, and more than 1000 per page is refused with 422

  @checklist_S_9
  Scenario: The exporters answer Prometheus only, and the Redis exporter signs in to the stack's Redis only
    Then from inside the network, the Redis exporter answers 401 without Prometheus's credentials, to /metrics and to a /scrape of a listener of ours, which it does not reach
    And with Prometheus's credentials, its /scrape of a listener of ours sends that listener no password
    And from inside the network, the PostgreSQL exporter answers 401 without Prometheus's credentials, to /metrics and to a /probe of a listener of ours, which it does not reach, and 200 with them

  @checklist_S_10
  Scenario: Passwords reach each service as files of its own, never through its configuration
    Then no container of the stack holds a password of the env file in its environment, command, healthcheck or labels, nor shows one on a process's command line
    And every service's secrets are files of its own folder, read-only, mode 0400 and owned by the user its program runs as
    And no process of the stack holds a password of the env file in its environment, but the Redis exporter its web password

  @checklist_S_11
  Scenario: The exporters and Alertmanager sit on a monitoring network the ecosystem cannot reach
    Then the exporters, Alertmanager and the alert receiver are on the monitoring network only, Prometheus on it and on the ecosystem's network, with the services Prometheus scrapes
    And from a container on the ecosystem's network, none of the exporters, Alertmanager and the alert receiver can be reached, by name or by address, while Redis, PostgreSQL and Prometheus can

  @checklist_S_12 @production_only
  Scenario: In production mode everything on the wire is encrypted, and a service's name alone earns no connection
    Then Redis, PostgreSQL, the registry and the configuration service answer no client that does not encrypt
    And every connection PostgreSQL holds from the network is encrypted
    And a server that takes over the names of Redis, PostgreSQL, the registry and the configuration service gets no connection from the services' own clients

  @checklist_S_8 @changes_stack @backend_outage
  Scenario: A backend failure reaches the client as a request id, its cause only the service's log
    When PostgreSQL is stopped
    Then a configuration read answers 503 with a request id and not the cause, which the configuration service's log has under that id
    When PostgreSQL is started again
    Then the configuration service answers reads again within 30 s
