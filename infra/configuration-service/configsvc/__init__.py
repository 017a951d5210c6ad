"""The trading ecosystem's configuration service: typed parameters per environment (and per service)
in PostgreSQL, with history, optimistic locking, and change notifications over Redis."""
