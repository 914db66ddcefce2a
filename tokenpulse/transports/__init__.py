"""Transports: thin I/O that sends a prepared chat request, stamps received bytes at receipt and feeds the
core's recorder. One folder per event loop, one contract (tokenpulse.core.wire) for all:

- gevent_loop/: blocking sockets under gevent, for Locust users (`SyncStreamDriver` on the raw-socket
  transport, read from the hub through one epoll set);
- asyncio_loop/: `AsyncStreamDriver` on the lean HTTP/1.1 transport, for the prober and `measure`.

Neither decides anything about timing, tokens or error classes: the core does.
"""
