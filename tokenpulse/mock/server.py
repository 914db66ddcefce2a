"""The mock's HTTP application: path dispatch for the API, the catalogue and the control endpoints.

Endpoints (both prefixes behave like their originals: /api/v1 is OpenRouter, /v1 is OpenAI-compatible):

- POST /api/v1/chat/completions, /v1/chat/completions
- GET  /api/v1/models, /v1/models; GET /api/v1/models/{author}/{slug}/endpoints
- GET  /api/v1/key; GET /api/v1/generation?id= (what the mock measured: mock/generations.py)
- GET  /_mock/stats; POST /_mock/outage {"provider", "active", "status"};
  POST /_mock/listing {"provider", "listed"} (hide a provider from the endpoints listings); GET /healthz
- GET  /metrics: the farm's own queue, slot and token figures in vLLM's names (metrics_page.py)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from tokenpulse.mock.chat import key_is_invalid, send_error, serve_chat
from tokenpulse.mock.farm import MockFarm
from tokenpulse.mock.http import Request, Responder
from tokenpulse.mock.metrics_page import CONTENT_TYPE, render_metrics
from tokenpulse.mock.pacer import Pacer
from tokenpulse.mock.state import FarmState
from tokenpulse.mock.wire import endpoints_body, models_body


class MockApp:
    """The request handler given to every HttpConnection of one server."""

    def __init__(self, farm: MockFarm, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.state = FarmState(farm, loop.time())
        self.pacer = Pacer(loop)
        self._models = models_body(list(farm.models.values()))  # immutable: serialised once

    async def __call__(self, req: Request, resp: Responder) -> None:
        path = req.path.rstrip("/") or "/"
        method = req.method
        if path in ("/api/v1/chat/completions", "/v1/chat/completions"):
            if method != "POST":
                return _not_allowed(resp)
            await serve_chat(self.state, self.pacer, req, resp, openrouter=path.startswith("/api/"))
        elif path in ("/api/v1/models", "/v1/models"):
            if method != "GET":
                return _not_allowed(resp)
            resp.send(200, self._models)
        elif path.startswith("/api/v1/models/") and path.endswith("/endpoints"):
            self._endpoints(req, resp, path.removeprefix("/api/v1/models/").removesuffix("/endpoints"))
        elif path == "/api/v1/key":
            self._key(req, resp)
        elif path == "/api/v1/generation":
            self._generation(req, resp)
        elif path == "/_mock/stats":
            resp.send(200, json.dumps(self.state.snapshot(self._loop.time())).encode())
        elif path == "/_mock/outage":
            self._outage(req, resp)
        elif path == "/_mock/listing":
            self._listing(req, resp)
        elif path == "/metrics":
            resp.send(200, render_metrics(self.state), content_type=CONTENT_TYPE)
        elif path == "/healthz":
            resp.send(200, b'{"status":"ok"}')
        else:
            send_error(resp, 404, f"no route for {method} {path}")
        return None

    def _endpoints(self, req: Request, resp: Responder, model_id: str) -> None:
        if req.method != "GET":
            return _not_allowed(resp)
        model = self.state.farm.models.get(model_id)
        if model is None:
            return send_error(resp, 404, f"Model {model_id} not found", {"model": model_id})
        if self.state.delisted & set(model.providers):
            kept = {slug: p for slug, p in model.providers.items() if slug not in self.state.delisted}
            model = model.model_copy(update={"providers": kept})
        resp.send(200, endpoints_body(model))
        return None

    def _generation(self, req: Request, resp: Responder) -> None:
        """GET /generation?id=: the ledger's answer (mock/generations.py)."""
        if req.method != "GET":
            return _not_allowed(resp)
        if key_is_invalid(req):
            return send_error(resp, 401, "Invalid API key")
        gen_id = parse_qs(req.query).get("id", [""])[0]
        if not gen_id:
            return send_error(resp, 400, "id is required")
        status, body = self.state.generations.lookup(gen_id, req.headers.get("authorization", ""), self._loop.time())
        resp.send(status, body)
        return None

    def _key(self, req: Request, resp: Responder) -> None:
        if key_is_invalid(req):
            return send_error(resp, 401, "Invalid API key")
        limit = self.state.farm.credit_limit_usd
        spent = round(self.state.spent_usd, 9)
        body: dict[str, Any] = {"data": {
            "label": "mock", "limit": limit, "usage": spent,
            "limit_remaining": None if limit is None else round(max(0.0, limit - spent), 9),
            "is_free_tier": False, "rate_limit": {"requests": -1, "interval": "10s"},
        }}
        resp.send(200, json.dumps(body).encode())
        return None

    def _outage(self, req: Request, resp: Responder) -> None:
        """Toggle a provider outage: every request routed to it then fails with `status` before
        streaming (and falls back when the request allows fallbacks)."""
        if req.method != "POST":
            return _not_allowed(resp)
        try:
            body = json.loads(req.body)
            slug = body["provider"]
            active = body.get("active", True)
            status = body.get("status", 502)
            if not isinstance(slug, str) or not isinstance(active, bool) or not isinstance(status, int) \
                    or not 400 <= status <= 599:
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError):
            return send_error(resp, 400, 'expected {"provider": "<slug>", "active": true|false, '
                                         '"status": 400..599}')
        try:
            self.state.set_outage(slug, active, status)
        except KeyError:
            return send_error(resp, 404, f"unknown provider {slug}",
                              {"providers": list(self.state.counters)})
        resp.send(200, json.dumps({"provider": slug, "active": active,
                                   "status": status if active else None}).encode())
        return None


    def _listing(self, req: Request, resp: Responder) -> None:
        """Hide (`listed: false`) or show a provider in every endpoints listing."""
        if req.method != "POST":
            return _not_allowed(resp)
        try:
            body = json.loads(req.body)
            slug, listed = body["provider"], body.get("listed", True)
            if not isinstance(slug, str) or not isinstance(listed, bool):
                raise ValueError
        except (ValueError, KeyError, TypeError, RecursionError):
            return send_error(resp, 400, 'expected {"provider": "<slug>", "listed": true|false}')
        try:
            self.state.set_listed(slug, listed)
        except KeyError:
            return send_error(resp, 404, f"unknown provider {slug}", {"providers": list(self.state.counters)})
        resp.send(200, json.dumps({"provider": slug, "listed": listed}).encode())
        return None


def _not_allowed(resp: Responder) -> None:
    send_error(resp, 405, "method not allowed")
