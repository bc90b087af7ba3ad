"""Alembic migrations of the annotation server's schema (see `annotation_server.schema`)."""
