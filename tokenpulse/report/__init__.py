"""Run reports: per-request records -> summary, percentiles, knee, plots, comparison of two runs.

Why our own percentiles: Locust keeps response times in rounded buckets (two significant digits above
100 ms) and knows nothing of tokens; the JSONL records keep every request's exact figures and token
times, so every number here is computed from them, over the measured window only (warm-up excluded).

Modules: `run` (read a run folder), `stats` (percentiles), `figures` (one group of requests -> its
figures), `summary` (per target and per step, generator health), `knee` (saturation), `compare`
(`--fail-on`), `markdown` (report.md and the console tables), `svg` and `html` (report.html).
"""
