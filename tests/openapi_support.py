"""schemathesis against the app's own OpenAPI document, for the core and each plugin's routes:
generated requests (valid ones and ones that break the schema) never get a 5xx, and every
response matches its documented status, content type and schema.

The operations are driven from the loaded schema with hypothesis directly (schemathesis's
lazy pytest fixture loader does not work with pytest 9); the checks are schemathesis's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import schemathesis
from api_support import Api
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Examples per operation for a plugin's routes (the core's own test asks for more).
PLUGIN_EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 5}


def operations(api: Api, prefix: str = "") -> list[Any]:
    """The operations of the app's OpenAPI document whose path starts with ``prefix``."""
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", api.client.app)
    found = [result.ok() for result in schema.get_all_operations()]
    return [operation for operation in found if operation.path.startswith(prefix)]


def assert_conforms(
    api: Api,
    chosen: Sequence[Any],
    mode: GenerationMode,
    examples: int,
    prepare: Callable[[Any], None] | None = None,
) -> None:
    """Call each of ``chosen`` with ``examples`` generated cases of ``mode`` as the admin,
    checking every answer; ``prepare`` may adjust a case first (a real id, to get past 404).
    A failure names the operation."""
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    for operation in chosen:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            if prepare is not None:
                prepare(case)
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            if mode is GenerationMode.NEGATIVE:
                # nothing in its schema can be broken: a public route (security: []) whose
                # parameters and body take any value, /health
                continue
            raise
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error
