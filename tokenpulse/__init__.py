"""tokenpulse: load-test and continuously monitor LLM inference APIs.

Layers, bottom to top (CONTRIBUTING.md; tests/test_layers.py holds them): core/ (sans-IO), transports/,
the shared modules (config, metrics, runfolder/), the apps (prober/, load/, report/, mock/), ops/ (the
native stack, the demo), cli/.
"""

__version__ = "0.1.0"
