"""The organization usage and costs APIs: bucket alignment, limits, paging, grouping, filters, both array
encodings, admin auth, exact costs, and (property test) sums that equal exactly what was served."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.openai_sim.prices import line_item_costs, resolve_family
from tools.openai_sim.state import api_key_id

DAY, HOUR = 86400, 3600
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _all_pages(call, **params):
    """Every bucket of a query, following next_page (the SDK does not auto-paginate this endpoint)."""
    buckets, page = [], None
    for _ in range(100):
        response = call(**params, **({"page": page} if page else {}))
        buckets += response.data
        if not response.has_more:
            return buckets
        page = response.next_page
    raise AssertionError("paging did not end")


def test_buckets_are_aligned_like_the_real_api(sim, client):
    sim.set_clock(T0 + 2 * DAY + 5 * HOUR)
    start = T0 + 13 * HOUR + 7  # unaligned, like the cookbook's recorded query
    page = client.admin.organization.usage.completions(start_time=start, bucket_width="1d")
    spans = [(b.start_time, b.end_time) for b in page.data]
    now = T0 + 2 * DAY + 5 * HOUR
    assert spans == [(start, T0 + DAY), (T0 + DAY, T0 + 2 * DAY), (T0 + 2 * DAY, now + 1)]
    assert all(b.results == [] for b in page.data) and not page.has_more and page.next_page is None
    explicit = client.admin.organization.usage.completions(start_time=T0, end_time=T0 + 90, bucket_width="1m")
    assert [(b.start_time, b.end_time) for b in explicit.data] == [(T0, T0 + 60), (T0 + 60, T0 + 90)]


@pytest.mark.parametrize(("width", "default", "maximum"), [("1m", 60, 1440), ("1h", 24, 168), ("1d", 7, 31)])
def test_limit_defaults_and_maxima(client, width, default, maximum):
    usage = client.admin.organization.usage
    assert len(usage.completions(start_time=T0, end_time=T0 + 400 * DAY, bucket_width=width).data) == default
    assert (
        len(usage.completions(start_time=T0, end_time=T0 + 400 * DAY, bucket_width=width, limit=maximum).data)
        == maximum
    )
    with pytest.raises(openai.BadRequestError) as too_many:
        usage.completions(start_time=T0, bucket_width=width, limit=maximum + 1)
    assert too_many.value.param == "limit"
    with pytest.raises(openai.BadRequestError):
        usage.completions(start_time=T0, bucket_width=width, limit=0)


def test_costs_limits_and_width(client):
    costs = client.admin.organization.usage.costs
    assert len(costs(start_time=T0, end_time=T0 + 400 * DAY).data) == 7
    assert len(costs(start_time=T0, end_time=T0 + 400 * DAY, limit=180).data) == 180
    for bad in ({"limit": 181}, {"limit": 0}, {"bucket_width": "1h"}):
        with pytest.raises(openai.BadRequestError):
            costs(start_time=T0, **bad)
    with pytest.raises(openai.BadRequestError):
        client.admin.organization.usage.completions(start_time=T0, group_by=["line_item"])


def test_paging_covers_the_range_exactly_once(sim, client):
    sim.set_clock(T0 + 50 * HOUR)
    for hour in (0, 23, 24, 49):
        sim.inject_usage(model="gpt-4o", time=T0 + hour * HOUR + 1, input_text_tokens=10)
    first = client.admin.organization.usage.completions(start_time=T0, bucket_width="1h", limit=24)
    assert first.has_more and first.next_page.startswith("page_") and len(first.data) == 24
    buckets = _all_pages(
        client.admin.organization.usage.completions, start_time=T0, bucket_width="1h", limit=24
    )
    assert [b.start_time for b in buckets] == [T0 + h * HOUR for h in range(51)]
    assert sum(r.input_tokens for b in buckets for r in b.results) == 40
    with pytest.raises(openai.BadRequestError):
        client.admin.organization.usage.completions(start_time=T0 + 1, page=first.next_page)


def test_grouping_filters_and_both_array_encodings(sim, client):
    sim.set_clock(T0 + HOUR)
    for project, key, model, user in [
        ("proj_a", "k1", "gpt-4o", "u1"),
        ("proj_a", "k2", "gpt-4o-mini", None),
        ("proj_b", "k1", "gpt-4o", "u2"),
    ]:
        c = client.with_options(api_key=f"sk-{key}", project=project)
        c.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], **({"user": user} if user else {})
        )
    usage = client.admin.organization.usage
    (bucket,) = usage.completions(start_time=T0, group_by=["project_id", "model"]).data
    assert [(r.project_id, r.model, r.num_model_requests) for r in bucket.results] == [
        ("proj_a", "gpt-4o-2024-08-06", 1),
        ("proj_a", "gpt-4o-mini-2024-07-18", 1),
        ("proj_b", "gpt-4o-2024-08-06", 1),
    ]
    assert all(r.user_id is None and r.api_key_id is None for r in bucket.results)
    (ungrouped,) = usage.completions(start_time=T0).data[0].results
    assert ungrouped.num_model_requests == 3 and ungrouped.project_id is None and ungrouped.model is None
    filtered = (
        usage.completions(
            start_time=T0,
            models=["gpt-4o-2024-08-06"],
            api_key_ids=[api_key_id("sk-k1")],
            project_ids=["proj_b"],
        )
        .data[0]
        .results
    )
    assert [r.num_model_requests for r in filtered] == [1]
    assert usage.completions(start_time=T0, user_ids=["u1", "u2"]).data[0].results[0].num_model_requests == 2
    assert usage.completions(start_time=T0, batch=True).data[0].results == []
    assert usage.completions(start_time=T0, batch=False).data[0].results[0].num_model_requests == 3
    assert usage.completions(start_time=T0, models=["gpt-4o"]).data[0].results == []  # served names only

    headers = {"Authorization": f"Bearer {sim.admin_key}"}
    url = sim.base_url + "/organization/usage/completions"
    repeated = httpx2.get(f"{url}?start_time={T0}&group_by=model&group_by=project_id", headers=headers).json()
    brackets = httpx2.get(
        f"{url}?start_time={T0}&group_by[]=model&group_by[]=project_id", headers=headers
    ).json()
    assert repeated == brackets and len(repeated["data"][0]["results"]) == 3
    filtered_repeated = httpx2.get(
        f"{url}?start_time={T0}&project_ids=proj_a&project_ids=proj_b", headers=headers
    )
    assert filtered_repeated.json()["data"][0]["results"][0]["num_model_requests"] == 3


def test_admin_key_is_required(sim):
    url = sim.base_url + "/organization/usage/completions"
    missing = httpx2.get(url, params={"start_time": T0})
    wrong = httpx2.get(url, params={"start_time": T0}, headers={"Authorization": f"Bearer {sim.api_key}"})
    assert missing.status_code == 401 and wrong.status_code == 403
    for response in (missing, wrong):
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    no_admin = openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        no_admin.admin.organization.usage.costs(
            start_time=T0, extra_headers={"Authorization": f"Bearer {sim.api_key}"}
        )
    missing_start = httpx2.get(url, headers={"Authorization": f"Bearer {sim.admin_key}"})
    assert missing_start.status_code == 400 and missing_start.json()["error"]["param"] == "start_time"


def test_price_resolution():
    assert resolve_family("gpt-4o-2024-08-06") == "gpt-4o"
    assert resolve_family("gpt-4o-mini") == "gpt-4o-mini"
    assert resolve_family("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert resolve_family("gpt-4o-mini-realtime-preview-2024-12-17") == "gpt-4o-mini-realtime-preview"
    assert resolve_family("gpt-realtime-2025-08-28") == "gpt-realtime"
    assert resolve_family("gpt-4omni") is None and resolve_family("o3") is None


def test_costs_are_exact_and_itemised(sim, client):
    sim.set_clock(T0 + HOUR)
    sim.inject_usage(
        model="gpt-4o-2024-08-06", input_text_tokens=1500, output_text_tokens=500, project_id="proj_a"
    )
    sim.inject_usage(
        model="gpt-4o-mini", input_text_tokens=1000, input_cached_text_tokens=1000, project_id="proj_b"
    )
    costs = client.admin.organization.usage.costs
    (total,) = costs(start_time=T0).data[0].results
    assert (
        total.amount.value == float(Decimal("0.00875") + Decimal("0.000225"))
        and total.amount.currency == "usd"
    )
    assert total.line_item is None and total.quantity is None and total.quantity_unit is None
    items = {
        r.line_item: (r.amount.value, r.quantity, r.quantity_unit)
        for r in costs(start_time=T0, group_by=["line_item"]).data[0].results
    }
    assert items == {
        "gpt-4o-2024-08-06, input": (0.00375, 1500, "tokens"),
        "gpt-4o-2024-08-06, output": (0.005, 500, "tokens"),
        "gpt-4o-mini, input": (0.00015, 1000, "tokens"),
        "gpt-4o-mini, cached input": (0.000075, 1000, "tokens"),
    }
    by_project = {
        r.project_id: r.amount.value for r in costs(start_time=T0, group_by=["project_id"]).data[0].results
    }
    assert by_project == {"proj_a": 0.00875, "proj_b": 0.000225}
    assert costs(start_time=T0, project_ids=["proj_none"]).data[0].results == []


def test_injection_is_validated(sim):
    for bad in (
        {"model": "gpt-unknown"},
        {"model": "gpt-4o", "input_audio_tokens": 5},
        {"model": "gpt-4o", "input_tokens": 5},
        {"model": "gpt-4o", "output_text_tokens": -1},
    ):
        with pytest.raises(Exception, match="400"):
            sim.inject_usage(**bad)


# -- property: every window, width and grouping sums to exactly what was served --------------------------

MODELS = ["gpt-4o", "gpt-4o-mini"]
PROJECTS = ["proj_a", "proj_b", "proj_c"]
KEYS = ["sk-key-one", "sk-key-two"]
USERS = [None, "u1", "u2"]
USAGE_GROUPS = ["project_id", "user_id", "api_key_id", "model", "batch", "service_tier"]

served_request = st.tuples(
    st.integers(0, 6 * HOUR),  # offset from T0
    st.sampled_from(MODELS),
    st.sampled_from(PROJECTS),
    st.sampled_from(KEYS),
    st.sampled_from(USERS),
    st.integers(1, 600),  # prompt length in characters
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    requests=st.lists(served_request, min_size=1, max_size=8),
    window=st.tuples(st.integers(0, 3 * HOUR), st.integers(1, 7 * HOUR)),
    width=st.sampled_from(["1m", "1h", "1d"]),
    group_by=st.lists(st.sampled_from(USAGE_GROUPS), unique=True, max_size=3),
)
def test_usage_api_sums_to_exactly_what_was_served(sim, client, requests, window, width, group_by):
    sim.reset()
    expected: Counter = Counter()
    expected_cost: dict[tuple, Decimal] = {}
    start, end = T0 + window[0], T0 + window[0] + window[1]
    for offset, model, project, key, user, length in sorted(requests):
        sim.set_clock(T0 + offset)
        c = client.with_options(api_key=key, project=project)
        completion = c.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "q" * length}],
            **({"user": user} if user else {}),
        )
        if not start <= T0 + offset < end:
            continue
        attributes = {
            "project_id": project,
            "user_id": user,
            "api_key_id": api_key_id(key),
            "model": completion.model,
            "batch": False,
            "service_tier": "default",
        }
        group = tuple(attributes[g] for g in group_by)
        u = completion.usage
        expected[(group, "input_tokens")] += u.prompt_tokens
        expected[(group, "input_cached_tokens")] += u.prompt_tokens_details.cached_tokens
        expected[(group, "output_tokens")] += u.completion_tokens
        expected[(group, "num_model_requests")] += 1
        cost_group = (project,)
        tokens = {
            "input_text_tokens": u.prompt_tokens - u.prompt_tokens_details.cached_tokens,
            "input_cached_text_tokens": u.prompt_tokens_details.cached_tokens,
            "output_text_tokens": u.completion_tokens,
        }
        expected_cost[cost_group] = expected_cost.get(cost_group, Decimal(0)) + sum(
            amount for _, _, amount in line_item_costs(completion.model, tokens)
        )
    sim.set_clock(T0 + 8 * HOUR)

    buckets = _all_pages(
        client.admin.organization.usage.completions,
        start_time=start,
        end_time=end,
        bucket_width=width,
        group_by=group_by,
    )
    assert buckets[0].start_time == start and buckets[-1].end_time == end
    assert all(a.end_time == b.start_time for a, b in zip(buckets, buckets[1:], strict=False))
    reported: Counter = Counter()
    for bucket in buckets:
        for r in bucket.results:
            group = tuple(getattr(r, g) for g in group_by)
            for name in ("input_tokens", "input_cached_tokens", "output_tokens", "num_model_requests"):
                reported[(group, name)] += getattr(r, name)
            assert (
                r.input_tokens == r.input_cached_tokens + r.input_cache_write_tokens + r.input_uncached_tokens
            )
            assert (
                r.input_uncached_tokens == r.input_text_tokens + r.input_audio_tokens + r.input_image_tokens
            )
            assert r.input_cached_tokens == (
                r.input_cached_text_tokens + r.input_cached_audio_tokens + r.input_cached_image_tokens
            )
            assert r.output_tokens == r.output_text_tokens + r.output_audio_tokens + r.output_image_tokens
    assert +reported == +expected

    cost_buckets = _all_pages(
        client.admin.organization.usage.costs, start_time=start, end_time=end, group_by=["project_id"]
    )
    reported_cost: dict[tuple, float] = {}
    for bucket in cost_buckets:
        for r in bucket.results:
            reported_cost[(r.project_id,)] = reported_cost.get((r.project_id,), 0.0) + r.amount.value
    assert reported_cost.keys() == expected_cost.keys()
    for group, amount in expected_cost.items():
        assert reported_cost[group] == pytest.approx(float(amount), rel=1e-12, abs=1e-15)
