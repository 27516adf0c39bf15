"""Assignment: who owns a record. Ordered rules per entity with strategies (round-robin,
least-loaded, weighted, territory, fixed, or a plugin's), member capacity and availability,
the shared pool records fall back to, and the ownership history.

This package is the domain: tables, rule definitions and strategies. The services in
``crmkit.services.assignment`` and ``crmkit.services.pool`` run them inside operations.
"""
