"""The embedded OpenRouter/OpenAI-compatible mock provider farm: tokenpulse's default target.

A raw-asyncio HTTP/1.1 server (uvloop when available) that serves /chat/completions (streamed and
not), /models, /models/{id}/endpoints and /key with seeded, reproducible latency, decode speed,
capacity queueing, reasoning, prices, injected faults and outages, per provider. It also stamps every
chunk with server-side ground truth on request (`X-Tokenpulse-Truth: 1`), so the client's measurements
can be checked against what the server actually did.

    from tokenpulse.mock import MockServerThread
    with MockServerThread() as srv:
        ...  # srv.base_url == "http://127.0.0.1:<port>/api/v1"
"""

from tokenpulse.mock.farm import FarmConfigError, MockFarm, default_farm, dump_farm, load_farm
from tokenpulse.mock.runner import MockServer, MockServerProcess, MockServerThread, run_mock_server

__all__ = [
    "FarmConfigError",
    "MockFarm",
    "MockServer",
    "MockServerProcess",
    "MockServerThread",
    "default_farm",
    "dump_farm",
    "load_farm",
    "run_mock_server",
]
