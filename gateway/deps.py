"""FastAPI dependencies: the authenticated tenant (from the bearer token only) and the gRPC clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway import tokens
from gateway.errors import forbidden, unauthenticated
from gateway.grpc_clients import GrpcClients

bearer = HTTPBearer(auto_error=False, description="HS256 JWT whose company_id claim is the tenant")


@dataclass(frozen=True)
class Tenant:
    company_id: str
    subject: str

    def check(self, company_id: str | None) -> None:
        """A company named in a query or body must be the token's own: the token alone decides the tenant."""
        if company_id is not None and company_id != self.company_id:
            raise forbidden("company_id does not match the company of the bearer token")


def current_tenant(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Tenant:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
    try:
        claims = tokens.verify(request.app.state.settings.jwt_secret, credentials.credentials)
    except jwt.ExpiredSignatureError:
        raise unauthenticated("the bearer token has expired") from None
    except jwt.InvalidTokenError:
        raise unauthenticated("the bearer token is invalid") from None
    return Tenant(company_id=claims["company_id"], subject=str(claims.get("sub", "")))


def grpc_clients(request: Request) -> GrpcClients:
    return request.app.state.clients


TenantDep = Annotated[Tenant, Depends(current_tenant)]
ClientsDep = Annotated[GrpcClients, Depends(grpc_clients)]
