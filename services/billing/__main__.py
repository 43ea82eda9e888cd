"""`python -m services.billing`: serve the Billing gRPC service."""

from services.billing.bootstrap import start
from services.billing.config import Settings
from services.common.entrypoint import run_service

if __name__ == "__main__":
    run_service("billing", Settings.from_env, start)
