"""`python -m services.usage_tracker`: serve the UsageTracker gRPC service."""

from services.common.entrypoint import run_service
from services.usage_tracker.bootstrap import start
from services.usage_tracker.config import Settings

if __name__ == "__main__":
    run_service("usage_tracker", Settings.from_env, start)
