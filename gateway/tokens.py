"""Signed bearer tokens for the gateway, and `python -m gateway.tokens --company-id ID` for ops and demos.

A token is an HS256 JWT whose `company_id` claim is the tenant every request is scoped to.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping

import jwt

ISSUER = "hiremeter"
AUDIENCE = "hiremeter-gateway"
COMPANY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DEMO_COMPANY_ID = "acme-recruiting"


def issue(secret: str, company_id: str, *, ttl_seconds: int = 3600, subject: str = "demo-user") -> str:
    if not COMPANY_ID_PATTERN.match(company_id):
        raise ValueError("company_id must be 1-128 characters of [A-Za-z0-9._:-]")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "company_id": company_id,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(secret: str, token: str) -> dict:
    """The token's claims; raises jwt.InvalidTokenError when it is expired, tampered or wrongly signed."""
    claims = jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "company_id"]},
    )
    if not isinstance(claims.get("company_id"), str) or not COMPANY_ID_PATTERN.match(claims["company_id"]):
        raise jwt.InvalidTokenError("company_id claim is malformed")
    return claims


def demo_link(gateway_url: str, env: Mapping[str, str], company_id: str = DEMO_COMPANY_ID) -> str:
    """The billing page for the demo company, the token in the fragment so it never reaches a server log."""
    token = issue(env["GATEWAY_JWT_SECRET"], company_id, ttl_seconds=7 * 24 * 3600)
    return f"{gateway_url}/dashboard/settings/billing?tab=usage#token={token}"


def main(argv: list[str] | None = None) -> int:
    from services.common.config import ConfigError, Env

    parser = argparse.ArgumentParser(prog="python -m gateway.tokens", description=__doc__.splitlines()[0])
    parser.add_argument("--company-id", required=True)
    parser.add_argument("--ttl-seconds", type=int, default=3600)
    args = parser.parse_args(argv)
    try:
        secret = Env().str("GATEWAY_JWT_SECRET")
    except ConfigError as error:
        print(f"gateway.tokens: {error}", file=sys.stderr)
        return 2
    try:
        print(issue(secret, args.company_id, ttl_seconds=args.ttl_seconds))
    except ValueError as error:
        print(f"gateway.tokens: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
