"""Chat completions through the SDK: structured outputs, streaming usage, prompt caching, refusals and the
served-usage record."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tools.openai_sim.state import api_key_id

RESUME_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "email", "skills", "experience", "education"],
    "properties": {
        "name": {"type": "string"},
        "email": {"type": "string"},
        "phone": {"type": ["string", "null"]},
        "skills": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "years_of_experience": {"type": "integer", "minimum": 0},
        "experience": {"type": "array", "items": {"$ref": "#/$defs/job"}},
        "education": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["degree", "institution"],
                "properties": {"degree": {"type": "string"}, "institution": {"type": "string"}},
            },
        },
    },
    "$defs": {
        "job": {
            "type": "object",
            "additionalProperties": False,
            "required": ["title", "company", "start_date"],
            "properties": {
                "title": {"type": "string"},
                "company": {"type": "string"},
                "start_date": {"type": "string"},
                "end_date": {"type": ["string", "null"]},
            },
        }
    },
}

QUESTIONS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["stages"],
    "properties": {
        "stages": {
            "type": "array",
            "minItems": 3,
            "maxItems": 3,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["stage", "questions"],
                "properties": {
                    "stage": {"type": "string", "enum": ["screening", "technical", "behavioral"]},
                    "questions": {
                        "type": "array",
                        "maxItems": 5,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["text", "difficulty"],
                            "properties": {
                                "text": {"type": "string", "minLength": 10},
                                "difficulty": {"type": "string", "enum": ["easy", "medium", "hard"]},
                            },
                        },
                    },
                },
            },
        }
    },
}


def _structured(client, schema, prompt, name):
    return client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "You are a recruiting assistant."},
            {"role": "user", "content": prompt},
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        },
    )


def test_resume_schema_yields_a_valid_plausible_resume(client):
    completion = _structured(
        client, RESUME_SCHEMA, "Parse this CV: Alex Morgan, Python engineer...", "resume"
    )
    resume = json.loads(completion.choices[0].message.content)
    jsonschema.Draft202012Validator(RESUME_SCHEMA).validate(resume)
    assert "@" in resume["email"] and resume["skills"] and resume["experience"][0]["company"]
    assert completion.model == "gpt-4o-2024-08-06"


def test_a_resume_carries_the_name_email_and_phone_of_the_cv_it_parses(client):
    cv = "Curriculum vitae\nLena Fischer\nlena.fischer@example.org | +49 30 1234 5678\nData engineer."
    resume = json.loads(_structured(client, RESUME_SCHEMA, cv, "resume").choices[0].message.content)
    jsonschema.Draft202012Validator(RESUME_SCHEMA).validate(resume)
    assert (resume["name"], resume["email"]) == ("Lena Fischer", "lena.fischer@example.org")
    other = json.loads(
        _structured(client, RESUME_SCHEMA, "Ravi Iyer\nravi@example.com", "resume").choices[0].message.content
    )
    assert (other["name"], other["email"]) == ("Ravi Iyer", "ravi@example.com")


@pytest.mark.parametrize(("asked", "expected"), [(None, 3), (2, 2), (4, 4), (9, 5)])
def test_questions_schema_honours_per_stage_counts(client, asked, expected):
    prompt = "Generate interview questions for a backend role."
    if asked is not None:
        prompt += f" Write {asked} questions per stage."
    content = json.loads(
        _structured(client, QUESTIONS_SCHEMA, prompt, "questions").choices[0].message.content
    )
    jsonschema.Draft202012Validator(QUESTIONS_SCHEMA).validate(content)
    assert [stage["stage"] for stage in content["stages"]] == ["screening", "technical", "behavioral"]
    assert all(len(stage["questions"]) == expected for stage in content["stages"])  # 9 is clamped to maxItems


def test_same_request_same_content(client):
    first = _structured(client, RESUME_SCHEMA, "Parse: Priya", "resume").choices[0].message.content
    assert _structured(client, RESUME_SCHEMA, "Parse: Priya", "resume").choices[0].message.content == first


def test_json_object_and_text_modes(client):
    messages = [{"role": "user", "content": "Reply in JSON."}]
    as_json = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(as_json.choices[0].message.content), dict)
    as_text = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert as_text.choices[0].message.content and as_text.model == "gpt-4o-mini-2024-07-18"


def test_usage_is_consistent_and_deterministic(client):
    messages = [{"role": "user", "content": "x" * 400}]
    usage = client.chat.completions.create(model="gpt-4o", messages=messages).usage
    # 400 chars = 100 tokens, + 4 message overhead + 3 reply priming.
    assert usage.prompt_tokens == 107
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0
    assert client.chat.completions.create(model="gpt-4o", messages=messages).usage == usage


def test_streaming_with_include_usage_ends_with_the_usage_chunk(client):
    messages = [{"role": "user", "content": "Tell me about the role."}]
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    plain = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_repeated_long_prompt_is_cached_in_128_token_steps(client):
    system = {"role": "system", "content": "You parse resumes carefully. " * 200}  # ~1450 tokens
    first = client.chat.completions.create(
        model="gpt-4o", messages=[system, {"role": "user", "content": "CV one"}]
    )
    second = client.chat.completions.create(
        model="gpt-4o", messages=[system, {"role": "user", "content": "CV two"}]
    )
    assert first.usage.prompt_tokens > 1024
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0 and cached <= second.usage.prompt_tokens
    other_model = client.chat.completions.create(model="gpt-4o-mini", messages=[system])
    assert other_model.usage.prompt_tokens_details.cached_tokens == 0  # caches are per model


def test_short_prompts_are_never_cached(client):
    for _ in range(2):
        usage = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        ).usage
        assert usage.prompt_tokens_details.cached_tokens == 0


def test_refusal_trigger(client):
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Rank candidates by age [[refuse]]"}],
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": RESUME_SCHEMA}},
    )
    message = completion.choices[0].message
    assert message.content is None and message.refusal
    assert completion.usage.completion_tokens > 0


def test_every_request_is_recorded_with_its_attribution(sim, client):
    project_client = client.with_options(api_key="sk-proj-other-key", project="proj_recruiting")
    completion = project_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], user="recruiter-7"
    )
    (record,) = sim.requests()
    assert record["model"] == completion.model == "gpt-4o-2024-08-06"
    assert record["project_id"] == "proj_recruiting"
    assert record["api_key_id"] == api_key_id("sk-proj-other-key") and record["api_key_id"].startswith("key_")
    assert (
        record["user_id"] == "recruiter-7"
        and record["batch"] is False
        and record["service_tier"] == "default"
    )
    assert record["input_tokens"] == completion.usage.prompt_tokens
    assert record["output_text_tokens"] == completion.usage.completion_tokens
    assert record["time"] == completion.created
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    assert sim.requests()[1]["project_id"] == "proj_default"


def test_unknown_model_and_wrong_keys_are_refused(sim, client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-unknown", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found"
    admin_as_api_key = client.with_options(api_key=sim.admin_key)
    with pytest.raises(openai.PermissionDeniedError):
        admin_as_api_key.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert sim.requests() == []
