"""Alembic revisions of the loyalty plugin (its own branch, labelled ``loyalty``)."""
