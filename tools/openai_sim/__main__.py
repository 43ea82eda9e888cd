"""``python -m tools.openai_sim [--host 127.0.0.1] [--port 8099] [--fault ENDPOINT=MODE[:k=v,...]]...``"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from .app import create_app
from .state import SimState, parse_fault_flag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.openai_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ENDPOINT=MODE[:k=v,...]",
        help="start with a fault, e.g. usage=rate_limit:retry_after=2 or chat=error:count=3 (repeatable)",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    state = SimState()
    for flag in args.fault:
        try:
            endpoint, fault = parse_fault_flag(flag)
        except ValueError as exc:
            parser.error(str(exc))
        state.set_fault(endpoint, fault)
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level=args.log_level, lifespan="off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
