"""The tracker's Prometheus metrics (exported by the shared server's metrics endpoint)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "hiremeter_usage_records_total", "Ledger rows written, by source and kind.", ["source", "kind"]
)
DUPLICATES = Counter("hiremeter_usage_duplicates_total", "Track calls answered with an existing record.")
USAGE_API_CALLS = Counter(
    "hiremeter_usage_api_calls_total",
    "Calls made to OpenAI's usage and costs APIs, by endpoint and outcome.",
    ["endpoint", "outcome"],
)
USAGE_API_SECONDS = Histogram(
    "hiremeter_usage_api_seconds", "Latency of OpenAI usage and costs API calls.", ["endpoint"]
)
USAGE_API_REFUSED = Counter(
    "hiremeter_usage_api_refused_total",
    "Lookups answered without a call: breaker open or Retry-After.",
    ["reason"],
)
BREAKER_OPEN = Gauge("hiremeter_usage_api_breaker_open", "1 while the usage API circuit breaker is open.")
