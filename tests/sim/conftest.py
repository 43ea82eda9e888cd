"""Fixtures for the simulator's own tests, built on the public helper :mod:`tools.openai_sim.testing`.

One simulator serves the whole session (starting uvicorn costs ~30 ms, but there is no need to pay it per
test); ``sim`` resets it before each test so tests never see each other's usage, faults or clock.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import yaml

from tools.openai_sim.testing import SimulatorHandle

# Verbatim copies of the shared OpenAI reference, kept with the tests (see reference/README.md).
REFERENCE = Path(__file__).resolve().parent / "reference"


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, the loop the SDK's realtime client targets."""
    return "asyncio"


@pytest.fixture
def client(sim: SimulatorHandle) -> openai.OpenAI:
    """An SDK client with both keys, no retries (tests see every fault as it is) and a bounded timeout."""
    return openai.OpenAI(
        base_url=sim.base_url, api_key=sim.api_key, admin_api_key=sim.admin_key, max_retries=0, timeout=10
    )


def _openapi_nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` (still used by a few schemas of the 3.1 spec, e.g. the streaming
    chunk's ``finish_reason``) is not a JSON Schema keyword; Draft 2020-12 would ignore it and reject the
    spec's own ``null`` values.  Rewrite it as ``anyOf [..., {"type": "null"}]``."""
    if isinstance(node, list):
        return [_openapi_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _openapi_nullable_to_json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


@pytest.fixture(scope="session")
def spec_document() -> dict[str, Any]:
    return json.loads((REFERENCE / "openai-schemas.json").read_text())


@pytest.fixture(scope="session")
def spec_excerpts() -> dict[str, Any]:
    """The verbatim OpenAPI excerpts (document 1: paths and components)."""
    return yaml.safe_load((REFERENCE / "openai-openapi-excerpts.yaml").read_text().split("\n---\n")[0])


@pytest.fixture(scope="session")
def spec_validate(spec_document: dict[str, Any]) -> Callable[[str, Any], None]:
    """``spec_validate("UsageResponse", payload)`` raises ``jsonschema.ValidationError`` on any mismatch."""
    components = _openapi_nullable_to_json_schema(copy.deepcopy(spec_document["components"]))
    validators: dict[str, jsonschema.Draft202012Validator] = {}

    def validate(name: str, payload: Any) -> None:
        if name not in validators:
            schema = {"$ref": f"#/components/schemas/{name}", "components": components}
            jsonschema.Draft202012Validator.check_schema(schema)
            validators[name] = jsonschema.Draft202012Validator(schema)
        validators[name].validate(payload)

    return validate
