"""OpenRouter provider routing: only / order / ignore / allow_fallbacks, no match, the provider field."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

import httpx
import pytest
from mock_helpers import PLAIN, chat_body, make_farm

from tokenpulse.mock import MockServerThread
from tokenpulse.mock.behaviour import derive_rng
from tokenpulse.mock.request import ProviderPrefs
from tokenpulse.mock.routing import route


def served_by(client: httpx.Client, provider: Mapping[str, object]) -> httpx.Response:
    return client.post("/api/v1/chat/completions", json=chat_body(provider=provider))


def slugs(prefs: ProviderPrefs, seed: int = 0) -> list[str]:
    model = make_farm().models[PLAIN]
    return [p.slug for p in route(model, prefs, derive_rng(seed))]


def test_only_by_slug_or_name_any_case(client: httpx.Client) -> None:
    assert served_by(client, {"only": ["beta"]}).json()["provider"] == "Beta"
    assert served_by(client, {"only": ["ALPHA CLOUD"]}).json()["provider"] == "Alpha Cloud"
    assert slugs(ProviderPrefs(only=("Gamma", "beta")))[0] in {"gamma", "beta"}
    assert set(slugs(ProviderPrefs(only=("Gamma", "beta")))) == {"gamma", "beta"}


def test_order_ranks_and_ignore_removes() -> None:
    assert slugs(ProviderPrefs(order=("gamma", "alpha"))) [:2] == ["gamma", "alpha"]
    assert slugs(ProviderPrefs(order=("gamma", "alpha"))) [2:] == ["beta"]  # fallbacks follow
    assert slugs(ProviderPrefs(order=("gamma", "alpha"), allow_fallbacks=False)) == ["gamma", "alpha"]
    assert "beta" not in slugs(ProviderPrefs(ignore=("Beta",)))
    assert slugs(ProviderPrefs(order=("beta",), ignore=("beta",)))[0] != "beta"
    assert len(slugs(ProviderPrefs(allow_fallbacks=False))) == 1


def test_default_routing_is_seeded_and_weighted() -> None:
    assert slugs(ProviderPrefs(), seed=3) == slugs(ProviderPrefs(), seed=3)
    firsts = Counter(slugs(ProviderPrefs(), seed=s)[0] for s in range(300))
    assert set(firsts) == {"alpha", "beta", "gamma"}  # equal weights: all get traffic
    heavy = make_farm({"a": {"name": "A", "profile": {"ttft": {"median_ms": 5, "p99_ms": 5},
                                                      "decode": {"tokens_per_s": 100}}, "weight": 9},
                       "b": {"name": "B", "profile": {"ttft": {"median_ms": 5, "p99_ms": 5},
                                                      "decode": {"tokens_per_s": 100}}, "weight": 1}})
    firsts = Counter(route(heavy.models[PLAIN], ProviderPrefs(), derive_rng(s))[0].slug for s in range(500))
    assert firsts["a"] > 3 * firsts["b"] > 0


def test_no_match_is_404(client: httpx.Client) -> None:
    for prefs in ({"only": ["nobody"]}, {"ignore": ["alpha", "beta", "gamma"]}):
        resp = served_by(client, prefs)
        assert resp.status_code == 404
        err = resp.json()["error"]
        assert err["code"] == 404 and "No endpoints found" in err["message"]


@pytest.fixture()
def outage_server() -> Iterator[MockServerThread]:
    with MockServerThread(make_farm()) as srv:
        srv.set_outage("alpha", True, status=503)
        yield srv


def test_fallback_skips_a_failing_provider(outage_server: MockServerThread) -> None:
    with httpx.Client(base_url=outage_server.root_url) as c:
        resp = served_by(c, {"order": ["alpha", "gamma"]})
        assert resp.status_code == 200 and resp.json()["provider"] == "Gamma"
        stream = c.post("/api/v1/chat/completions",
                        json=chat_body(stream=True, provider={"order": ["alpha", "gamma"]}))
        assert stream.status_code == 200 and b'"provider":"Gamma"' in stream.content
    stats = outage_server.stats()["providers"]
    assert stats["alpha"]["errors"]["outage"] == 2 and stats["alpha"]["served"] == 0
    assert stats["gamma"]["served"] == 2


def test_without_fallbacks_the_error_is_returned(outage_server: MockServerThread) -> None:
    with httpx.Client(base_url=outage_server.root_url) as c:
        resp = served_by(c, {"only": ["alpha"], "allow_fallbacks": False})
        assert resp.status_code == 503
        err = resp.json()["error"]
        assert err["code"] == 503 and err["metadata"]["provider_name"] == "Alpha Cloud"
        resp = served_by(c, {"order": ["alpha"], "allow_fallbacks": False})
        assert resp.status_code == 503
        resp = served_by(c, {"only": ["alpha"]})  # fallbacks allowed, but nothing else is allowed
        assert resp.status_code == 503
