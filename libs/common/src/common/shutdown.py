"""A worker stopped by SIGTERM (a rolling update, a scale-down) exits 0 once its graceful
shutdown has finished: that stop was asked for and went well.

uvicorn (>= 0.29) re-raises the signal it caught after shutting down, so the process
would die of SIGTERM (exit -15 / 143) however cleanly it stopped. Its server object is
reachable as the signal handler it installed; dropping SIGTERM from the signals it
re-raises leaves a normal exit. SIGINT (Ctrl-C) keeps uvicorn's behaviour."""

import logging
import signal

log = logging.getLogger(__name__)


def exit_zero_after_sigterm() -> None:
    """Call at the end of a graceful shutdown; a no-op outside uvicorn's main thread."""
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    captured = getattr(server, "_captured_signals", None)
    if isinstance(captured, list) and signal.SIGTERM in captured:
        captured[:] = [s for s in captured if s != signal.SIGTERM]
        log.info("stopped gracefully after SIGTERM; exiting 0")
