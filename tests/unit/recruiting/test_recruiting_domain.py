"""Domain rules: usage mapping and summing, durations, staged question counts, resume parsing, backoff."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from services.common.errors import InvalidArgument
from services.recruiting.domain import questions as q
from services.recruiting.domain.instructions import interview_instructions
from services.recruiting.domain.resume import ModelOutputInvalid, normalize_date, parse_resume_content
from services.recruiting.domain.usage import (
    RealtimeUsage,
    TokenCounts,
    decimal_text,
    duration_minutes,
    from_chat_usage,
    sum_realtime,
)
from services.recruiting.outbox.relay import backoff_delay

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_chat_usage_maps_field_for_field():
    usage = {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 7},
        "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 3},
    }
    assert from_chat_usage(usage) == TokenCounts(
        input_tokens=1117,
        output_tokens=46,
        cached_input_tokens=1024,
        input_audio_tokens=7,
        output_audio_tokens=3,
        reasoning_tokens=12,
    )
    assert from_chat_usage({"prompt_tokens": 5, "completion_tokens": 2}) == TokenCounts(5, 2)


GA_EXAMPLE = {
    "total_tokens": 253,
    "input_tokens": 132,
    "output_tokens": 121,
    "input_token_details": {
        "text_tokens": 119,
        "audio_tokens": 13,
        "image_tokens": 0,
        "cached_tokens": 64,
        "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
}


def test_realtime_usages_are_summed_into_totals_and_subsets():
    one = RealtimeUsage.from_event_usage(GA_EXAMPLE)
    two = RealtimeUsage(
        input_tokens=300,
        output_tokens=50,
        total_tokens=350,
        input_text_tokens=200,
        input_audio_tokens=100,
        input_cached_tokens=150,
        input_cached_text_tokens=100,
        input_cached_audio_tokens=50,
        output_text_tokens=10,
        output_audio_tokens=40,
    )
    assert sum_realtime([one, two]) == TokenCounts(
        input_tokens=432,
        output_tokens=171,
        cached_input_tokens=214,
        input_audio_tokens=113,
        cached_input_audio_tokens=50,
        output_audio_tokens=131,
    )


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        (RealtimeUsage(input_tokens=-1), r"response_usages\[0\].input_tokens must not be negative"),
        (RealtimeUsage(input_tokens=10, input_cached_tokens=11), r"response_usages\[0\].cached_input_tokens"),
        (RealtimeUsage(input_tokens=10, output_tokens=1, total_tokens=5), r"total_tokens must equal"),
        (RealtimeUsage(output_tokens=1, output_audio_tokens=2), "output_tokens must include"),
    ],
)
def test_inconsistent_realtime_usage_names_the_field(usage, message):
    with pytest.raises(InvalidArgument, match=message):
        sum_realtime([usage])


def test_token_usage_subsets_are_checked():
    with pytest.raises(InvalidArgument, match="usage.cached_input_audio_tokens must not exceed"):
        TokenCounts(
            input_tokens=10, cached_input_tokens=2, input_audio_tokens=5, cached_input_audio_tokens=3
        ).check("usage")


@pytest.mark.parametrize(
    ("seconds", "minutes"),
    [(240, "4"), (90.5, "1.5083"), (0, "0.0001"), (0.001, "0.0001"), (3600 * 2 + 3, "120.05")],
)
def test_duration_is_exact_minutes_to_a_ten_thousandth(seconds, minutes):
    assert decimal_text(duration_minutes(T0, T0 + dt.timedelta(seconds=seconds))) == minutes
    assert Decimal(minutes) > 0


def test_default_stages_and_stage_checks():
    assert [(s.stage, s.count) for s in q.check_stages([])] == [
        ("screening", 3),
        ("technical", 5),
        ("behavioural", 3),
    ]
    with pytest.raises(InvalidArgument, match=r"stages\[1\].count must be between 1 and 20"):
        q.check_stages([q.StageSpec("a", 1), q.StageSpec("b", 21)])
    with pytest.raises(InvalidArgument, match=r"stages\[0\].stage must be 1-64"):
        q.check_stages([q.StageSpec(" ", 1)])
    with pytest.raises(InvalidArgument, match=r"stages\[1\].stage 'A' is repeated"):
        q.check_stages([q.StageSpec("a", 1), q.StageSpec("A", 1)])
    with pytest.raises(InvalidArgument, match="stages must have at most 10"):
        q.check_stages([q.StageSpec(f"s{i}", 1) for i in range(11)])


def test_the_schema_pins_each_stage_count():
    schema = q.questions_schema([q.StageSpec("screening", 2), q.StageSpec("technical", 4)])
    stages = schema["properties"]["stages"]["properties"]
    assert stages["stage_2"]["properties"]["questions"]["minItems"] == 4
    assert stages["stage_2"]["properties"]["questions"]["maxItems"] == 4
    assert schema["properties"]["stages"]["required"] == ["stage_1", "stage_2"]


def _reply(*counts: int) -> str:
    return json.dumps(
        {
            "stages": {
                f"stage_{i + 1}": {"questions": [{"text": f"q{i}.{j}", "rationale": "r"} for j in range(n)]}
                for i, n in enumerate(counts)
            }
        }
    )


def test_extra_questions_are_trimmed_and_too_few_fail():
    specs = [q.StageSpec("screening", 2), q.StageSpec("technical", 3)]
    stages = q.parse_questions_content(_reply(4, 3), specs)
    assert [len(s.questions) for s in stages] == [2, 3] and q.question_count(stages) == 5
    with pytest.raises(ModelOutputInvalid, match="technical stage has 1 questions, 3 were requested"):
        q.parse_questions_content(_reply(2, 1), specs)
    with pytest.raises(ModelOutputInvalid, match="not valid JSON"):
        q.parse_questions_content('{"stages": {', specs)


def test_resume_content_is_validated_and_dates_normalised():
    content = {
        "full_name": "Jane Doe",
        "emails": ["jane@example.com", " "],
        "phones": [],
        "location": "Berlin",
        "summary": "",
        "skills": ["Python"],
        "experience": [
            {
                "title": "Eng",
                "company": "Acme",
                "start_date": "2019-03-01",
                "end_date": "Present",
                "description": "",
            }
        ],
        "education": [],
        "languages": [],
        "links": [],
    }
    resume = parse_resume_content(json.dumps(content))
    assert resume.emails == ["jane@example.com"]
    assert (resume.experience[0].start_date, resume.experience[0].end_date) == ("2019-03", "")
    with pytest.raises(ModelOutputInvalid, match="skills must be a list of strings"):
        parse_resume_content(json.dumps({**content, "skills": "Python"}))
    assert normalize_date("2014") == "2014" and normalize_date("Spring 2014") == "Spring 2014"


def test_instructions_carry_the_candidate_and_every_question_in_order():
    stages = [
        q.QuestionStage("screening", [q.Question("Why us?", "")]),
        q.QuestionStage("technical", [q.Question("Explain MVCC.", "")]),
    ]
    text = interview_instructions(job_id="job-1", candidate_name="Jane Doe", stages=stages)
    assert "Jane Doe" in text and "job-1" in text
    assert text.index("1. Why us?") < text.index("2. Explain MVCC.")


def test_backoff_doubles_with_full_jitter_and_a_cap():
    assert backoff_delay(1, 0.5, 30, rng=lambda: 1.0) == 0.5
    assert backoff_delay(3, 0.5, 30, rng=lambda: 1.0) == 2.0
    assert backoff_delay(3, 0.5, 30, rng=lambda: 0.0) == 1.0
    assert backoff_delay(50, 0.5, 30, rng=lambda: 1.0) == 30
