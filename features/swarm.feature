@section_W @swarm_only
Feature: W. The stack on Docker Swarm (extra, beyond the milestone)
  With `pytest features/ --stack=swarm` the same docker-compose.yml is deployed as a swarm stack
  (steps/harness/swarm_file.py says what changes and why), and every scenario of the suite runs on
  it: those that have no meaning there are reported "not applicable on swarm", with the reason.
  These scenarios prove what swarm adds. With compose they are not run.

  Background:
    Given the trading-ecosystem stack is up

  @checklist_W_1
  Scenario: The stateless services run replicated, every replica healthy and answering
    Then the "service-registry" and "configuration-service" services each run at least 2 replicas, every one healthy
    And inside the network, every replica of "service-registry" answers its health on port 8080, and every replica of "configuration-service" on port 8090
    And the replicas of each service are spread over as many of the swarm's nodes as they can be

  @checklist_W_2 @changes_stack
  Scenario: A killed replica is replaced, discovery and configuration served throughout
    When the program of one replica of "service-registry" and of one replica of "configuration-service" is killed, while clients read discovery and configuration
    Then swarm replaces each killed replica with a new healthy one within its healthcheck budget
    And every read of the discovery and configuration APIs in the meantime was answered

  @checklist_W_3
  Scenario: Prometheus scrapes every replica
    Then Prometheus scrapes the jobs "service-registry-replicas" and "configuration-service-replicas", one target up for each replica

  @checklist_W_4 @changes_stack
  Scenario: A rolling update replaces every replica, never leaving fewer healthy than declared
    When every replica of "service-registry" and of "configuration-service" is replaced by a rolling update, while clients read discovery and configuration
    Then swarm completes each update, every replica replaced by a new healthy one
    And throughout each update, no service had fewer healthy replicas than it declares
    And every read of the discovery and configuration APIs in the meantime was answered

  @checklist_W_5 @changes_stack
  Scenario: An update whose new replicas never get healthy is rolled back
    When "service-registry" is updated to a version that never gets healthy, while clients read discovery and configuration
    Then swarm rolls the update back, and every replica of "service-registry" runs the previous version, healthy
    And every read of the discovery and configuration APIs in the meantime was answered
