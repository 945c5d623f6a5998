"""Stop requests (Ctrl-C, SIGTERM) that cannot get lost on the way to the exit code.

Python turns SIGINT into KeyboardInterrupt at whichever bytecode runs next. When that bytecode
belongs to a finalizer (a weakref callback of SQLAlchemy's connection pool, a `__del__`), the
exception is printed as "Exception ignored" and dropped; a library's cleanup can also replace it
with an error of its own (Optuna's journal-file lock raises RuntimeError from `release()` when
interrupted while waiting). A sweep that then carries on and exits 0 is the worst outcome for a
scheduled job, so the handler also records the signal, and every place that would report
success asks `requested()` first.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: int | None = None  # the first stop signal of this process


def install() -> None:
    """Forget earlier stops and route SIGINT and SIGTERM through the recording handler."""
    global _received
    _received = None
    install_handlers()


def install_handlers() -> None:
    """The recording handler for SIGINT and SIGTERM (main thread only), record kept."""
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _handle)


def _handle(signum: int, frame) -> None:
    global _received
    if _received is None:
        _received = signum
    raise exception_for(signum)


def _record_only(signum: int, frame) -> None:
    record(signum)


@contextlib.contextmanager
def deferred():
    """Record a stop inside the block and raise it right after. For importing torch and its
    extension modules: an interrupt raised in the middle of their C-level initialisation has
    aborted the interpreter (exit -6 instead of 130 for a Ctrl-C 1 s after start, under load)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _record_only) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    raise_if_requested()


def exception_for(signum: int) -> BaseException:
    """KeyboardInterrupt for Ctrl-C, SystemExit(128 + n) for SIGTERM (and any other signal)."""
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return SystemExit(128 + signum)


def record(signum: int) -> None:
    """Note a stop request that arrived through another handler (a worker's own)."""
    global _received
    if _received is None:
        _received = signum


def requested() -> int | None:
    """The first stop signal received, or None."""
    return _received


def exit_code() -> int:
    """The shell's code for a process stopped by the received signal (130, 143)."""
    return 128 + (_received or signal.SIGINT)


def raise_if_requested() -> None:
    """Raise the stop again if it was received but swallowed somewhere on the way."""
    if _received is not None:
        raise exception_for(_received)
