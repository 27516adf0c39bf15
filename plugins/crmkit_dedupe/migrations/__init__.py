"""Alembic revisions of the dedupe plugin (its own branch, labelled ``dedupe``)."""
