"""`python -m services.common.grpc_health_probe HOST:PORT`: exit 0 when the server reports SERVING.

The container healthcheck of every gRPC service (docker-compose.yml); health needs no service token.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m services.common.grpc_health_probe HOST:PORT", file=sys.stderr)
        return 2
    try:
        with grpc.insecure_channel(argv[0]) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    except grpc.RpcError as error:
        print(f"{argv[0]}: {error.code().name}", file=sys.stderr)
        return 1
    serving = answer.status == health_pb2.HealthCheckResponse.SERVING
    print(f"{argv[0]}: {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}")
    return 0 if serving else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
