"""Permissions: roles with scoped grants, field rules, API tokens, the audit log."""
