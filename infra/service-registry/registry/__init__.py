"""The trading ecosystem's service registry: registration and discovery over Redis, and the live
health of the infrastructure it probes."""
