"""Streaming LLM load test with tokenpulse's user and shapes (thin: everything lives in tokenpulse.load).

Usually run through `tokenpulse load --config FILE ...`, which also writes the report. Plain Locust works
too, with tokenpulse's options passed as `--tp-*` arguments:

    locust -f locustfiles/tokenpulse_locust.py --headless --tp-config tokenpulse.yaml \\
        --tp-shape sweep --tp-levels 1,4,16 --tp-run-time 90 --tp-out runs/sweep1
    tokenpulse report runs/sweep1

Workers of a distributed run: `locust -f locustfiles/tokenpulse_locust.py --worker --master-host HOST`
(they receive the config and every option from the master). See docs/load-testing.md.
"""

from tokenpulse.load.locustfile import TokenpulseShape, TokenpulseUser  # noqa: F401  (Locust finds them here)
