"""Prometheus text format 0.0.4 for the prober's registry, byte-identical to `generate_latest`, faster.

Why: at a thousand targets the prober exports ~215,000 samples (metrics.py gives every target seven
histograms). prometheus-client's `generate_latest` rebuilds a label dict and re-validates and
re-escapes every label name for every sample: ~2 s of CPU per scrape, which on its own would exceed
the prober's CPU budget at a 15 s scrape interval, and holds the GIL long enough to delay probes.

This renderer formats each series' label string once and caches it, then only reads values. It
reads the metric objects' values through prometheus-client's internal attributes (`_metrics`,
`_value`, `_buckets`, ...), so it is defensive: any metric it does not recognise exactly (another
type, a custom collector, `_created` series enabled, a label name that needs escaping) is rendered by
`generate_latest` itself, and any unexpected structure makes it fall back to `generate_latest` for
the whole registry. A test checks the output is byte-identical to `generate_latest`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)
from prometheus_client import metrics as pc_metrics
from prometheus_client import values as pc_values
from prometheus_client.utils import floatToGoString

log = logging.getLogger(__name__)

_LEGACY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LEGACY_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
#: Distinct values whose text is kept between renders (a few MB at most).
_VALUE_TEXT_LIMIT = 100_000


class _Unsupported(Exception):
    """The fast path does not know this structure; use generate_latest."""


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help(name: str, documentation: str) -> str:
    escaped = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return "# HELP " + name + " " + escaped + "\n"


class FastExposition:
    """Renders one registry; keeps per-series label strings between renders."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._labels: dict[tuple[int, tuple[str, ...]], tuple[str, str, str]] = {}
        self._bound_text: dict[tuple[float, ...], list[str]] = {}
        self._value_text: dict[float, str] = {}
        self._failed = False

    def render(self) -> bytes:
        if not self._failed:
            try:
                return self._render().encode("utf-8")
            except _Unsupported as exc:
                self._failed = True
                log.warning("fast /metrics rendering is unavailable (%s); using prometheus_client's", exc)
            except (AttributeError, TypeError, KeyError) as exc:
                self._failed = True
                log.warning("fast /metrics rendering failed (%s); using prometheus_client's",
                            type(exc).__name__)
        return generate_latest(self._registry)

    # ------------------------------------------------------------------------------ internals
    def _collectors(self) -> Iterable[Any]:
        mapping = getattr(self._registry, "_collector_to_names", None)
        lock = getattr(self._registry, "_lock", None)
        if not isinstance(mapping, dict) or lock is None:
            raise _Unsupported("unknown registry structure")
        with lock:
            return list(mapping)

    def _render(self) -> str:
        # Values are read from `MutexValue._value` without taking each value's lock (a third of a
        # render went to 200,000 lock round trips). A float attribute read is atomic under the GIL, and
        # the locks never made a scrape consistent across series or buckets anyway: `observe` updates
        # the sum and a bucket under separate locks. Multiprocess mode stores values elsewhere.
        if pc_values.ValueClass is not pc_values.MutexValue:
            raise _Unsupported("a value class other than MutexValue (multiprocess mode)")
        out: list[str] = []
        for collector in self._collectors():
            kind = type(collector)
            if (kind in (Counter, Gauge, Histogram, Summary) and not pc_metrics._use_created
                    and collector._is_parent() and _LEGACY_NAME.match(collector._name)
                    and all(_LEGACY_LABEL.match(n) for n in collector._labelnames)):
                self._metric(collector, out)
            else:
                out.append(generate_latest(collector).decode("utf-8"))
        return "".join(out)

    def _series(self, metric: Any, values: tuple[str, ...], bucket: bool) -> tuple[str, str, str]:
        """Label strings of one series: (plain `{...}`, bucket prefix `{...le="`, bucket suffix `"...}`)."""
        key = (id(metric), values)
        cached = self._labels.get(key)
        if cached is None:
            pairs = sorted(zip(metric._labelnames, values, strict=True))
            plain = "{" + ",".join(f'{n}="{_escape_value(v)}"' for n, v in pairs) + "}" if pairs else ""
            before = [f'{n}="{_escape_value(v)}"' for n, v in pairs if n < "le"]
            after = [f'{n}="{_escape_value(v)}"' for n, v in pairs if n > "le"]
            if bucket and any(n == "le" for n, _ in pairs):
                raise _Unsupported("a histogram with an `le` label")
            prefix = "{" + "".join(f"{p}," for p in before) + 'le="'
            suffix = '"' + "".join(f",{a}" for a in after) + "}"
            cached = (plain, prefix, suffix)
            self._labels[key] = cached
        return cached

    def _bounds(self, upper_bounds: list[float]) -> list[str]:
        key = tuple(upper_bounds)
        text = self._bound_text.get(key)
        if text is None:
            text = self._bound_text[key] = [floatToGoString(b) for b in upper_bounds]
        return text

    def _count_text(self, value: float) -> str:
        """`floatToGoString` of a counter value or a cumulative bucket count, memoised.

        Why: nine in ten samples are bucket counts, mostly small whole numbers repeated across series,
        and formatting them was most of a render. Only values accumulated from +0.0 by additions come
        here (never -0.0, which would share 0.0's key); NaN never matches, so it is never reused."""
        text = self._value_text.get(value)
        if text is None:
            text = floatToGoString(value)
            if len(self._value_text) >= _VALUE_TEXT_LIMIT:
                self._value_text.clear()
            self._value_text[value] = text
        return text

    def _metric(self, metric: Any, out: list[str]) -> None:
        name = metric._name
        kind = metric._type
        with metric._lock:
            children = list(metric._metrics.items())
        if kind == "counter":
            total = f"{name}_total"
            out.append(_help(total, metric._documentation))
            out.append(f"# TYPE {total} counter\n")
            for values, child in children:
                plain = self._series(metric, values, False)[0]
                out.append(f"{total}{plain} {self._count_text(child._value._value)}\n")
        elif kind == "gauge":
            out.append(_help(name, metric._documentation))
            out.append(f"# TYPE {name} gauge\n")
            for values, child in children:
                plain = self._series(metric, values, False)[0]
                out.append(f"{name}{plain} {floatToGoString(child._value._value)}\n")
        elif kind == "histogram":
            out.append(_help(name, metric._documentation))
            out.append(f"# TYPE {name} histogram\n")
            bucket_name, count_name, sum_name = f"{name}_bucket", f"{name}_count", f"{name}_sum"
            count_text = self._count_text
            for values, child in children:
                plain, prefix, suffix = self._series(metric, values, True)
                bounds = self._bounds(child._upper_bounds)
                acc = 0.0
                for bound, bucket in zip(bounds, child._buckets, strict=True):
                    acc += bucket._value
                    out.append(f"{bucket_name}{prefix}{bound}{suffix} {count_text(acc)}\n")
                out.append(f"{count_name}{plain} {count_text(acc)}\n")
                out.append(f"{sum_name}{plain} {floatToGoString(child._sum._value)}\n")
        elif kind == "summary":  # without quantiles (prometheus-client's Summary has none)
            out.append(_help(name, metric._documentation))
            out.append(f"# TYPE {name} summary\n")
            count_name, sum_name = f"{name}_count", f"{name}_sum"
            for values, child in children:
                plain = self._series(metric, values, False)[0]
                out.append(f"{count_name}{plain} {self._count_text(child._count._value)}\n")
                out.append(f"{sum_name}{plain} {floatToGoString(child._sum._value)}\n")
        else:
            raise _Unsupported(f"metric type {kind!r}")
