"""The mock's prompt-prefix cache: which leading blocks of a prompt a provider has seen before.

Why blocks of hashed text: real prefix caches (vLLM's automatic prefix caching, OpenAI's and
DeepSeek's implicit caching) match the longest run of leading token blocks already computed, and
report those tokens as `usage.prompt_tokens_details.cached_tokens`. The mock counts 4 characters per
token (request.py), so a block of `block_tokens` tokens is `4 * block_tokens` characters of the
concatenated message contents; each block's key is the digest of the whole text up to its end (a
chained hash), so two prompts share a key only when everything before it is the same too.

Whether a seen prefix *hits* is a draw with the profile's `hit_rate`: a provider with several replicas
only hits when the request lands on one that holds the prefix. A request always fills the cache with
its own blocks (hit or miss), least recently used blocks go first past `max_blocks`.

Cost: one incremental BLAKE2b pass over the prompt (a 100k-token prompt is ~800 digests, well under a
millisecond), and only for providers whose profile enables the cache.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from collections.abc import Sequence

from tokenpulse.mock.farm import CacheProfile

#: The mock's tokenizer: characters per token (request.py counts prompt tokens the same way).
CHARS_PER_TOKEN = 4
#: Separates message contents in the hashed text, so ["ab", "c"] and ["a", "bc"] differ.
_SEPARATOR = "\x00"


def block_keys(parts: Sequence[str], block_chars: int) -> list[bytes]:
    """Digest of the prompt text up to the end of each whole block (chained: each covers all before)."""
    h = hashlib.blake2b(digest_size=16)
    keys: list[bytes] = []
    pending = 0  # characters fed since the last block boundary
    for i, part in enumerate(parts):
        data = part if i == 0 else _SEPARATOR + part
        pos = 0
        while pos < len(data):
            take = min(block_chars - pending, len(data) - pos)
            h.update(data[pos:pos + take].encode("utf-8", "surrogatepass"))
            pos += take
            pending += take
            if pending == block_chars:
                keys.append(h.copy().digest())
                pending = 0
    return keys


class PrefixCache:
    """One (model, provider) endpoint's cache of prompt blocks. Lives on the mock's event loop."""

    def __init__(self, profile: CacheProfile) -> None:
        self.profile = profile
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self.lookups = 0
        self.hits = 0

    def serve(self, parts: Sequence[str], rng: random.Random) -> int:
        """Look the prompt up and add its blocks; the cached prompt tokens this request reports."""
        prof = self.profile
        keys = block_keys(parts, prof.block_tokens * CHARS_PER_TOKEN)
        matched = 0
        for key in keys:
            if key not in self._blocks:
                break
            matched += 1
        self.lookups += 1
        cached = matched * prof.block_tokens
        hit = cached >= prof.min_tokens and rng.random() < prof.hit_rate
        for key in keys:
            self._blocks[key] = None
            self._blocks.move_to_end(key)
        while len(self._blocks) > prof.max_blocks:
            self._blocks.popitem(last=False)
        if not hit:
            return 0
        self.hits += 1
        return cached


class PrefixCaches:
    """The farm's caches, one per (model id, provider slug), created on first use."""

    def __init__(self) -> None:
        self._caches: dict[tuple[str, str], PrefixCache] = {}

    def cached_tokens(self, model_id: str, slug: str, profile: CacheProfile, parts: Sequence[str],
                      rng: random.Random) -> int:
        """Cached prompt tokens of one request served by `slug` (0 when its profile has no cache)."""
        if profile.hit_rate <= 0 or not parts:
            return 0
        cache = self._caches.get((model_id, slug))
        if cache is None:
            cache = self._caches[(model_id, slug)] = PrefixCache(profile)
        return cache.serve(parts, rng)
