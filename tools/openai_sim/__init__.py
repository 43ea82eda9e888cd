"""HireMeter's local OpenAI simulator: an OpenAI-compatible HTTP/WebSocket server for development and tests.

Run it with ``python -m tools.openai_sim --port 8099`` (``--fault ENDPOINT=MODE[:k=v,...]`` repeatable), or
start it inside a test with :func:`tools.openai_sim.testing.running_simulator`.

Served (under ``/v1``, like ``https://api.openai.com/v1``):

* ``POST /chat/completions``: structured outputs, JSON mode, text, streaming with ``include_usage``,
  deterministic ``usage`` with prompt caching; a message containing ``[[refuse]]`` gets a refusal.
* ``GET /organization/usage/completions`` and ``GET /organization/costs``: computed from the record of every
  request served, in the spec's exact envelope (admin key required).
* ``POST /realtime/client_secrets`` and the ``/realtime`` WebSocket.

Admin API (no key; loopback only) under ``/_sim/``: ``GET health``, ``GET|DELETE faults``,
``PUT|DELETE faults/{endpoint}``, ``GET stats``, ``GET requests``, ``POST usage``, ``PUT clock``,
``POST reset``.  Fault modes: ``rate_limit`` (retry_after), ``error`` (status), ``slow`` (seconds),
``malformed``, ``hang`` (seconds, capped at 120), ``lag`` (seconds; usage and costs only); each takes an
optional ``count`` after which it clears itself.  Endpoints: ``chat``, ``usage``, ``costs``,
``client_secrets``, ``realtime``.

The modules: :mod:`.app` (routes, auth, faults), :mod:`.usage_api` (buckets, grouping, paging),
:mod:`.prices` (list prices as data), :mod:`.tokens` (token counts and the prompt cache), :mod:`.generate`
(model output), :mod:`.realtime` (the WebSocket conversation), :mod:`.state` (the in-memory record).
"""

from .app import create_app
from .state import SimState

__all__ = ["SimState", "create_app"]
