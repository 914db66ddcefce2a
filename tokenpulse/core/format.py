"""Human-readable rendering of figures for terminal tables (the JSON outputs keep raw numbers)."""

from __future__ import annotations

from collections.abc import Sequence


def fmt_seconds(value: float | None) -> str:
    """Milliseconds below 10 s (TTFT territory), seconds above."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value * 1000:.0f} ms" if value >= 0.0095 else f"{value * 1000:.1f} ms"
    return f"{value:.1f} s"


def fmt_number(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def fmt_usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned table: first column left-aligned, the rest right-aligned (numbers)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def render_fields(pairs: Sequence[tuple[str, str]]) -> str:
    """A two-column key/value listing."""
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)
