"""Alembic revisions of the cardscan plugin (its own branch, labelled ``cardscan``)."""
