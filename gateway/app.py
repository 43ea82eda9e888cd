"""The FastAPI application: built from settings, never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import errors
from gateway.config import Settings
from gateway.grpc_clients import GrpcClients
from gateway.middleware import RequestIdMiddleware
from gateway.routes import billing, page, recruiting


def create_app(settings: Settings, clients: GrpcClients | None = None) -> FastAPI:
    """The gateway; `clients` lets a test hand in channels of its own (by default built from settings)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.clients.close()

    app = FastAPI(
        title="HireMeter gateway",
        version="1.0.0",
        description="Billing and recruiting for hiring companies. Every /api route takes a Bearer JWT whose "
        "company_id claim is the only company it can see. Amounts are exact decimal strings (USD).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clients = clients or GrpcClients.connect(settings)
    app.state.asset_version = page._asset_version()
    errors.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Content-Disposition"],
            max_age=600,
        )
    # Outermost: every response, CORS preflights and errors included, carries X-Request-Id.
    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(billing.router)
    app.include_router(recruiting.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    return app
