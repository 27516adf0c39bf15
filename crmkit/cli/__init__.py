"""The ``crmkit`` command line: one click group per noun, each in its own module.

``cli`` is the root group (the docs' CLI reference is generated from it); ``main`` is the
console script. Plugin commands get the open CRM through ``crmkit.cli_crm()``.
"""

from crmkit.cli.root import cli, main

__all__ = ["cli", "main"]
