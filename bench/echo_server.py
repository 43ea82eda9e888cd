"""`python -m bench.echo_server --port P`: a bare gRPC server that answers every unary call with a fixed
response, on the same thread-pool size as the services. It is the throughput ceiling Track is compared with:
same client, same payloads, no work behind the call."""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2_grpc


def serve(port: int, response: bytes, workers: int) -> None:
    def handle(request: bytes, context) -> bytes:
        return response

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(handle)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((handler,))
    # Health only so the harness can wait for it like for the services; the echo path has no interceptor.
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response-bytes", type=int, default=400)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    serve(args.port, b"\0" * args.response_bytes, args.workers)
