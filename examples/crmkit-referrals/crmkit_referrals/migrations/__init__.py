"""Alembic revisions of the referrals plugin (its own branch, labelled ``referrals``)."""
