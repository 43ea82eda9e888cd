"""The simulator's payloads validate against OpenAI's own component schemas (Draft 2020-12), and so do the
spec's example payloads, which proves the validator accepts what the real API sends and is not vacuous."""

from __future__ import annotations

import json
import time

import httpx2
import jsonschema
import pytest

# Where a spec example contradicts its own schema (``null`` where the schema wants an object or array).
# The real API sends these nulls; the simulator omits such fields instead.  The test pins the exact set, so
# everything else in each example must validate.
EXAMPLE_KNOWN_NULLS = {
    "UsageCompletionsResult": set(),
    "CostsResult": set(),
    "CreateChatCompletionResponse": set(),
    "RealtimeServerEventResponseDone": {("response", "status_details")},
    "RealtimeCreateClientSecretResponse": {
        ("session", "audio", "input", "transcription"),
        ("session", "audio", "input", "noise_reduction"),
        ("session", "include"),
    },
}


def _path_example(spec_excerpts: dict, path: str) -> dict:
    return json.loads(spec_excerpts["paths"][path]["get"]["x-oaiMeta"]["examples"]["response"])


@pytest.mark.parametrize("path", ["/organization/usage/completions", "/organization/costs"])
def test_spec_page_examples_validate(spec_excerpts, spec_validate, path):
    spec_validate("UsageResponse", _path_example(spec_excerpts, path))


def _errors_without_discriminator(spec_document, name, payload):
    """Error paths, validating through the realtime session branch directly: ``oneOf`` would only say
    "valid under none" and hide where."""
    if name == "RealtimeCreateClientSecretResponse":
        schema = {
            "$ref": "#/components/schemas/RealtimeSessionCreateResponseGA",
            "components": spec_document["components"],
        }
        return {
            ("session", *e.absolute_path)
            for e in jsonschema.Draft202012Validator(schema).iter_errors(payload["session"])
        }
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec_document["components"]}
    return {tuple(e.absolute_path) for e in jsonschema.Draft202012Validator(schema).iter_errors(payload)}


@pytest.mark.parametrize("name", sorted(EXAMPLE_KNOWN_NULLS))
def test_spec_component_examples_validate(spec_document, spec_validate, name):
    example = json.loads(spec_document["components"]["schemas"][name]["x-oaiMeta"]["example"])
    assert _errors_without_discriminator(spec_document, name, example) == EXAMPLE_KNOWN_NULLS[name]
    for path in EXAMPLE_KNOWN_NULLS[name]:
        parent = example
        for key in path[:-1]:
            parent = parent[key]
        assert parent.pop(path[-1]) is None
    spec_validate(name, example)


def test_spec_stream_chunk_examples_validate(spec_document, spec_validate):
    text = spec_document["components"]["schemas"]["CreateChatCompletionStreamResponse"]["x-oaiMeta"][
        "example"
    ]
    chunks = [json.loads(block) for block in text.split("\n\n") if block.strip().startswith("{")]
    assert len(chunks) == 3
    for chunk in chunks:
        spec_validate("CreateChatCompletionStreamResponse", chunk)


@pytest.mark.parametrize(
    ("mutate", "name"),
    [
        (lambda page: page["data"][0].update(result=page["data"][0].pop("results")), "UsageResponse"),
        (lambda page: page["data"][0]["results"][0].update(input_tokens="1000"), "UsageResponse"),
        (
            lambda page: page["data"][0]["results"][0].update(object="organization.usage.result"),
            "UsageResponse",
        ),
        (lambda page: page.update(has_more="yes"), "UsageResponse"),
    ],
)
def test_validator_rejects_broken_pages(spec_excerpts, spec_validate, mutate, name):
    page = _path_example(spec_excerpts, "/organization/usage/completions")
    mutate(page)
    with pytest.raises(jsonschema.ValidationError):
        spec_validate(name, page)


def test_chat_completion_validates(client, spec_validate):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Say hello."}]
    )
    body = raw.http_response.json()
    spec_validate("CreateChatCompletionResponse", body)
    spec_validate("CompletionUsage", body["usage"])


def test_stream_chunks_validate(client, spec_validate):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream a reply."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    lines = [line for line in raw.http_response.read().decode().splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    for chunk in chunks:
        spec_validate("CreateChatCompletionStreamResponse", chunk)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_usage_and_costs_pages_validate(sim, client, spec_validate):
    for model in ("gpt-4o", "gpt-4o-mini"):
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Count my tokens."}]
        )
    start = int(time.time()) - 3 * 86400
    for group_by in ([], ["model", "project_id", "api_key_id", "user_id", "batch", "service_tier"]):
        raw = client.admin.organization.usage.with_raw_response.completions(
            start_time=start, group_by=group_by
        )
        page = raw.http_response.json()
        spec_validate("UsageResponse", page)
        assert any(bucket["results"] for bucket in page["data"])
    for group_by in ([], ["line_item", "project_id", "api_key_id"]):
        raw = client.admin.organization.usage.with_raw_response.costs(start_time=start, group_by=group_by)
        page = raw.http_response.json()
        spec_validate("UsageResponse", page)
        assert any(bucket["results"] for bucket in page["data"])


def test_client_secret_validates(client, spec_validate):
    raw = client.realtime.client_secrets.with_raw_response.create(
        expires_after={"anchor": "created_at", "seconds": 600},
        session={"type": "realtime", "model": "gpt-realtime", "instructions": "You interview candidates."},
    )
    body = raw.http_response.json()
    spec_validate("RealtimeCreateClientSecretResponse", body)
    assert body["value"].startswith("ek_") and body["session"]["id"].startswith("sess_")
    assert body["session"]["model"] == "gpt-realtime" and body["session"]["object"] == "realtime.session"


def test_error_body_validates(sim, spec_validate):
    response = httpx2.get(sim.base_url + "/organization/costs", params={"start_time": 0})
    assert response.status_code == 401
    spec_validate("ErrorResponse", response.json())
