"""A pipe that ties every Locust process of a run to the `tokenpulse load` process that started it.

Why: Locust runs in its own session (so a Ctrl-C in the terminal reaches only `tokenpulse load`, which
then stops Locust cleanly). But when `tokenpulse load` itself is killed with SIGKILL (a CI timeout, the
OOM killer), nothing would stop Locust: it would keep sending billable requests with PPID 1.

How: `tokenpulse load` opens a pipe, keeps the write end (it never writes) and hands the read end to
Locust (`pass_fds` and `TOKENPULSE_LIFELINE_FD`). Every Locust process inherits the read end, also the
workers that `--processes` forks. When the parent dies, the kernel closes the write end, the read
returns end-of-file, and each Locust process stops as on Ctrl-C (SIGINT): users drain (`load.drain_s`), then
the records, meta.json and Locust's files are complete. Should that stop hang, the process exits
hard after the drain plus a margin. No polling: a greenlet sleeps in the hub until the pipe says so.

Why SIGINT and not SIGTERM: Locust's SIGTERM handler is a gevent (libev) signal watcher, and a
tokenpulse Locust process has OS threads (gevent's resolver pool) that do not block the signal, so a
SIGTERM can be taken by one of them with the default action, which kills the process with no drain
and no final meta.json. SIGINT is Python's own handler (KeyboardInterrupt in the main greenlet),
which Locust turns into its clean stop whichever thread the signal reached.

Unlike PR_SET_PDEATHSIG, which is cleared in forked children and tied to the parent *thread*, the pipe
covers every process of the tree and works wherever pipes do.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Mapping

ENV_FD = "TOKENPULSE_LIFELINE_FD"
#: After the parent is gone: time beyond the drain for the clean stop, then `os._exit`.
HARD_EXIT_MARGIN_S = 15.0

log = logging.getLogger("tokenpulse.load")


class Lifeline:
    """Parent side (`tokenpulse load`, no gevent): the pipe, its fd for the child, and closing."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()  # both non-inheritable; pass_fds makes read_fd inherited

    def child_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {**env, ENV_FD: str(self.read_fd)}

    def started(self) -> None:
        """The child has its copy of the read end: drop ours (the write end stays open until we die)."""
        os.close(self.read_fd)

    def close(self) -> None:
        os.close(self._write_fd)


def watch(drain_s: Callable[[], float], env: Mapping[str, str] | None = None) -> bool:
    """Child side (a Locust process, under gevent): stop this process when the parent goes away.
    `drain_s` gives the drain in force when that happens (a worker learns it from the master). False
    when the process was not started with a lifeline (plain `locust -f`)."""
    import gevent
    from gevent.socket import wait_read

    text = (os.environ if env is None else env).get(ENV_FD, "")
    if not text.isdigit():
        return False
    fd = int(text)
    try:
        os.fstat(fd)
    except OSError:
        return False

    def run() -> None:
        while True:
            wait_read(fd)
            try:
                if os.read(fd, 4096):
                    continue  # nobody writes, but stay correct if someone does
            except BlockingIOError:
                continue
            except OSError:
                pass
            break
        # Our stdout and stderr were a pipe to the parent, whose reader is gone: a write would now fail
        # (BrokenPipeError) in the middle of the clean stop. What is left to say goes nowhere; the
        # records and meta.json are files of their own.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
        gevent.spawn_later(drain_s() + HARD_EXIT_MARGIN_S, os._exit, 1)
        os.kill(os.getpid(), signal.SIGINT)

    os.set_blocking(fd, False)
    gevent.spawn(run)
    return True
