"""The plugin's Alembic branch: write revisions with `crmkit plugins migration tickets -m ...`."""
