"""The annotation server: crowd studies of task objectivity (pairwise) and instance labeling.

`app.create_app` builds the Flask app (JSON API under /api/v1, worker pages, admin dashboard);
`studies`, `sessions`, `scheduling`, `leases`, `answers`, `progress`, `reports` and `export` hold the
domain logic; `models` the SQLModel tables; `schema` the Alembic migrations. See CONTRACT.md and
docs/server.md.
"""
