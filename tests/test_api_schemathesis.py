"""schemathesis against the app's own OpenAPI document: generated requests to every operation,
valid ones and ones that break the schema, never get a 5xx, and every response matches its
documented status, content type and schema (tests/openapi_support.py)."""

from __future__ import annotations

import pytest
from api_support import Api
from openapi_support import assert_conforms, operations
from schemathesis import GenerationMode

EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 6}


@pytest.fixture
def seeded(api: Api) -> Api:
    """The API on a CRM with a few records to hit."""
    api.call("POST", "/contacts", json={"full_name": "张伟", "phone": "138 1234 5678"})
    api.call("POST", "/accounts", json={"name": "宏達資訊股份有限公司"})
    api.call("POST", "/deals", json={"name": "ERP 系统升级", "amount": "1000"})
    api.crm.forms.add("官网询价", ["full_name", "email"])
    api.crm.segments.create("上海联系人", "contact", {"account.city": "上海"})
    return api


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
def test_the_api_conforms_to_its_own_openapi(seeded: Api, mode: GenerationMode) -> None:
    chosen = operations(seeded)
    assert len(chosen) > 30  # every entity's routes, webhooks, forms
    assert_conforms(seeded, chosen, mode, EXAMPLES[mode])
