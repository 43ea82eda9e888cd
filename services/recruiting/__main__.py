"""`python -m services.recruiting`: serve the Recruiting gRPC service."""

from services.common.entrypoint import run_service
from services.recruiting.bootstrap import start
from services.recruiting.config import Settings

if __name__ == "__main__":
    run_service("recruiting", Settings.from_env, start)
