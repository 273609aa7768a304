"""Operators' tooling: the `toko` command, `make run`'s checks and supervision, the demo, the rendered nginx,
PgBouncer and replica configurations, and docs/api.md. It may import the services; they never import it."""
