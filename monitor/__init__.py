"""tokenpulse: load-test and continuously monitor LLM inference APIs.

The import package is `monitor`; the distribution and the command are `tokenpulse`.
"""

__version__ = "0.1.0"
