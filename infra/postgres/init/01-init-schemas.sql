-- Runs once, on an empty data directory, connected to POSTGRES_DB (trading_ecosystem) as the superuser.
-- Role passwords come from the init's environment (PG_PASSWORD_*, which the entrypoint reads from the
-- secret files /run/secrets/pg_password_*; see .env.example), never from this file.
\set ON_ERROR_STOP on

-- One schema per domain, and the login role its data adapter connects as.
CREATE TEMPORARY TABLE domain (schema_name text, role_name text, description text);
INSERT INTO domain VALUES
  ('market_data',       'market_data_adapter',      'Market data: prices, order books and feeds'),
  ('exchange',          'exchange_adapter',         'Exchange simulation: orders, trades and accounts'),
  ('custodian',         'custodian_adapter',        'Custody: positions, balances and settlements'),
  ('risk',              'risk_adapter',             'Risk monitoring: limits, exposures and alerts'),
  ('trading',           'trading_adapter',          'Trading engine: strategies, signals and executions'),
  ('test_coordination', 'test_coordinator_adapter', 'Test coordination: scenarios, runs and results'),
  ('audit',             'audit_adapter',            'Audit: events and correlations across services');

-- Nobody but a schema's own role may create objects outside it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The monitoring role (the PostgreSQL exporter): the server's statistics and settings (pg_monitor),
-- no domain's data.
CREATE ROLE monitor LOGIN;
GRANT pg_monitor TO monitor;

-- The registry's probe: it connects and runs `SELECT 1`, which PUBLIC's CONNECT allows; no grant, no
-- statistics, and a few connections at most (one probe every few seconds).
CREATE ROLE service_registry LOGIN CONNECTION LIMIT 3;

DO $$
DECLARE d record;
BEGIN
  FOR d IN SELECT * FROM domain LOOP
    EXECUTE format('CREATE ROLE %I LOGIN', d.role_name);
    EXECUTE format('CREATE SCHEMA %I AUTHORIZATION %I', d.schema_name, d.role_name);
    EXECUTE format('COMMENT ON SCHEMA %I IS %L', d.schema_name, d.description);
    -- Only the owner works in a schema, and reads it.
    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', d.schema_name);
    EXECUTE format('ALTER ROLE %I SET search_path = %I, public', d.role_name, d.schema_name);
  END LOOP;
END
$$;

-- The configuration service's own schema and role (not a domain: health_check() lists domains only).
-- The service creates its tables there at start; only it reads them.
CREATE ROLE config_service LOGIN;
CREATE SCHEMA config AUTHORIZATION config_service;
COMMENT ON SCHEMA config IS 'Configuration service: parameters per environment and their history';
REVOKE ALL ON SCHEMA config FROM PUBLIC;
ALTER ROLE config_service SET search_path = config, public;

-- Connections per login role, so that no one role (a leaking pool, a stolen password) can take every
-- one of max_connections (100) from the others; the superuser signs in on the socket, into the 3
-- slots PostgreSQL reserves for superusers. Each limit is the most its clients' pools open:
-- - a domain adapter: 30, the largest pool of the ecosystem's adapters (the Python adapters'
--   SQLAlchemy pool_size 10 + max_overflow 20; the Go adapters' MAX_CONNECTIONS defaults to 25);
-- - monitor: 25, the PostgreSQL exporter (one connection) and the acceptance suite's reads (one per
--   parallel worker at a time) and an operator's psql;
-- - config_service: 45, its pool's max_size 10 per worker (configsvc/store.py), 2 workers
--   (CONFIG_WORKERS), 2 replicas on swarm = 40, plus the start-up checks and the new task of a
--   rolling update;
-- - service_registry: 3 (above: one probe at a time per replica, and a rolling update's third).
ALTER ROLE market_data_adapter CONNECTION LIMIT 30;
ALTER ROLE exchange_adapter CONNECTION LIMIT 30;
ALTER ROLE custodian_adapter CONNECTION LIMIT 30;
ALTER ROLE risk_adapter CONNECTION LIMIT 30;
ALTER ROLE trading_adapter CONNECTION LIMIT 30;
ALTER ROLE test_coordinator_adapter CONNECTION LIMIT 30;
ALTER ROLE audit_adapter CONNECTION LIMIT 30;
ALTER ROLE monitor CONNECTION LIMIT 25;
ALTER ROLE config_service CONNECTION LIMIT 45;

\getenv password PG_PASSWORD_MARKET_DATA_ADAPTER
ALTER ROLE market_data_adapter PASSWORD :'password';
\getenv password PG_PASSWORD_EXCHANGE_ADAPTER
ALTER ROLE exchange_adapter PASSWORD :'password';
\getenv password PG_PASSWORD_CUSTODIAN_ADAPTER
ALTER ROLE custodian_adapter PASSWORD :'password';
\getenv password PG_PASSWORD_RISK_ADAPTER
ALTER ROLE risk_adapter PASSWORD :'password';
\getenv password PG_PASSWORD_TRADING_ADAPTER
ALTER ROLE trading_adapter PASSWORD :'password';
\getenv password PG_PASSWORD_TEST_COORDINATOR_ADAPTER
ALTER ROLE test_coordinator_adapter PASSWORD :'password';
\getenv password PG_PASSWORD_AUDIT_ADAPTER
ALTER ROLE audit_adapter PASSWORD :'password';
\getenv password PG_PASSWORD_MONITOR
ALTER ROLE monitor PASSWORD :'password';
\getenv password PG_PASSWORD_CONFIG_SERVICE
ALTER ROLE config_service PASSWORD :'password';
\getenv password PG_PASSWORD_SERVICE_REGISTRY
ALTER ROLE service_registry PASSWORD :'password';
\unset password

-- The database's own health summary, callable by every role.
CREATE OR REPLACE FUNCTION public.health_check() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'status', 'healthy',
    'timestamp', now(),
    'version', version(),
    'schemas', (SELECT coalesce(jsonb_agg(nspname ORDER BY nspname), '[]'::jsonb)
                  FROM pg_namespace
                 WHERE nspname IN ('market_data', 'exchange', 'custodian', 'risk', 'trading',
                                   'test_coordination', 'audit')));
$$;
COMMENT ON FUNCTION public.health_check() IS 'Status, time, server version and the domain schemas present';
