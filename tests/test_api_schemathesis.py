"""schemathesis against the app's own OpenAPI document: generated requests to every operation,
valid ones and ones that break the schema, never get a 5xx, and every response matches its
documented status, content type and schema.

The operations are driven from the loaded schema with hypothesis directly (schemathesis's
lazy pytest fixture loader does not work with pytest 9); the checks are schemathesis's own.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from api_support import Api
from hypothesis import HealthCheck, Phase, given, settings
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
EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 6}


@pytest.fixture
def api_schema(api: Api) -> Any:
    """The OpenAPI schema the app serves, on a CRM with a few records to hit."""
    api.call("POST", "/contacts", json={"full_name": "张伟", "phone": "138 1234 5678"})
    api.call("POST", "/accounts", json={"name": "宏達資訊股份有限公司"})
    api.call("POST", "/deals", json={"name": "ERP 系统升级", "amount": "1000"})
    api.crm.forms.add("官网询价", ["full_name", "email"])
    api.crm.segments.create("上海联系人", "contact", {"account.city": "上海"})
    return schemathesis.openapi.from_asgi("/schema/openapi.json", api.client.app)


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
def test_the_api_conforms_to_its_own_openapi(
    api: Api,
    api_schema: Any,
    mode: GenerationMode,
) -> None:
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30  # every entity's routes, webhooks, forms
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error
