"""GET /dashboard/settings/billing?tab=usage: the billing page's HTML shell. It holds no data: the script
reads the token from the URL fragment (never sent to a server) and calls the JSON API with it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from string import Template
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

router = APIRouter(include_in_schema=False)

GATEWAY_DIR = Path(__file__).resolve().parents[1]
TEMPLATE = GATEWAY_DIR / "templates" / "billing.html"
STATIC_DIR = GATEWAY_DIR / "static"
TABS = ("usage",)
NOTICE = (
    '<p class="notice" role="note"><strong>OpenAI is simulated.</strong> '
    "These figures come from HireMeter's local OpenAI simulator, not from a real OpenAI account.</p>"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _asset_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*.*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@router.get("/dashboard/settings/billing", response_class=HTMLResponse)
def billing_page(request: Request, tab: Annotated[str | None, Query(max_length=32)] = None) -> Response:
    if tab not in TABS:
        return RedirectResponse("/dashboard/settings/billing?tab=usage", status_code=307)
    page = Template(TEMPLATE.read_text()).substitute(
        version=request.app.state.asset_version,
        notice=NOTICE if request.app.state.settings.openai_simulated else "",
    )
    return HTMLResponse(page, headers=SECURITY_HEADERS)
