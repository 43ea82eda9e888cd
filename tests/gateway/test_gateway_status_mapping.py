"""gRPC status -> HTTP status and JSON error body, through a scripted billing server; the request id reaches
the backend as x-request-id metadata."""

from __future__ import annotations

import grpc
import pytest
from hiremeter.billing.v1 import billing_pb2, billing_pb2_grpc

from services.common.grpc_server import GrpcService, build_server
from tests.gateway.gateway_kit import bearer, gateway_client, gateway_settings

MAPPING = [
    (grpc.StatusCode.INVALID_ARGUMENT, 400, "period.start_date must be a date", "start must be a date"),
    (grpc.StatusCode.NOT_FOUND, 404, "no such thing", "no such thing"),
    (grpc.StatusCode.PERMISSION_DENIED, 403, "not yours", "not yours"),
    (grpc.StatusCode.FAILED_PRECONDITION, 400, "not ready", "not ready"),
    (grpc.StatusCode.ALREADY_EXISTS, 409, "twice", "twice"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "slow down", "slow down"),
    (grpc.StatusCode.UNIMPLEMENTED, 501, "Method not implemented!", "Method not implemented!"),
    (
        grpc.StatusCode.UNAVAILABLE,
        503,
        "db at 10.0.0.5 down",
        "the service is unavailable; try again shortly",
    ),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504, "too slow", "the service did not answer in time"),
    (grpc.StatusCode.INTERNAL, 500, "stack trace here", "internal error"),
    (
        grpc.StatusCode.UNAUTHENTICATED,
        500,
        "bad service token",
        "the gateway could not authenticate to the service",
    ),
]


class ScriptedBilling(billing_pb2_grpc.BillingServicer):
    def __init__(self) -> None:
        self.status = None
        self.metadata: list[dict] = []

    def GetUsageSummary(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        code, message = self.status
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            context.set_trailing_metadata((("retry-after", "7"),))
        context.abort(code, message)


@pytest.fixture
def scripted(server_settings):
    fake = ScriptedBilling()
    running = build_server(
        server_settings,
        [
            GrpcService(
                "hiremeter.billing.v1.Billing",
                lambda s: billing_pb2_grpc.add_BillingServicer_to_server(fake, s),
            )
        ],
    )
    with gateway_client(gateway_settings(f"127.0.0.1:{running.port}", "127.0.0.1:9")) as client:
        yield client, fake
    running.stop()


def test_grpc_codes_map_to_http_with_a_json_error(scripted):
    client, fake = scripted
    for code, status, message, shown in MAPPING:
        fake.status = (code, message)
        response = client.get(
            "/api/v1/billing/usage/summary", headers={**bearer("acme"), "X-Request-Id": f"rid-{code.name}"}
        )
        assert response.status_code == status, (code, response.text)
        assert response.json() == {
            "error": {"code": code.name, "message": shown, "request_id": f"rid-{code.name}"}
        }
        assert fake.metadata[-1]["x-request-id"] == f"rid-{code.name}"
        if status == 429:
            assert response.headers["retry-after"] == "7"


def test_unknown_routes_and_methods_are_json_errors(scripted):
    client, _ = scripted
    missing = client.get("/api/v1/nothing", headers=bearer("acme"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = client.delete("/api/v1/billing/usage/summary", headers=bearer("acme"))
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_grpc_request_carries_the_service_token_not_the_user_token(scripted):
    client, fake = scripted
    fake.status = (grpc.StatusCode.NOT_FOUND, "x")
    client.get("/api/v1/billing/usage/summary", headers=bearer("acme"))
    assert fake.metadata[-1]["authorization"] == "Bearer test-service-token"


def test_summary_request_is_scoped_to_the_token_company(server_settings):
    seen = []

    class Recording(billing_pb2_grpc.BillingServicer):
        def GetUsageSummary(self, request, context):
            seen.append(request.company_id)
            return billing_pb2.GetUsageSummaryResponse(
                company_id=request.company_id,
                currency="USD",
                period=request.period,
                total_cost="0",
                base_cost="0",
            )

    running = build_server(
        server_settings,
        [
            GrpcService(
                "hiremeter.billing.v1.Billing",
                lambda s: billing_pb2_grpc.add_BillingServicer_to_server(Recording(), s),
            )
        ],
    )
    try:
        with gateway_client(gateway_settings(f"127.0.0.1:{running.port}", "127.0.0.1:9")) as client:
            assert (
                client.get(
                    "/api/v1/billing/usage/summary", params={"company_id": "acme"}, headers=bearer("acme")
                ).status_code
                == 200
            )
    finally:
        running.stop()
    assert seen == ["acme"]
