"""User-facing errors: one clear, actionable message, no traceback wall; preemption as exit 143."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from contextlib import contextmanager

log = logging.getLogger(__name__)


class MERError(Exception):
    """A problem with the user's input (config, paths, data) that they can fix.

    The message says what was wrong, where (file, row, path) and what to do about it.
    Entry points print it on one line and exit with status 2 instead of a traceback.
    """


class LeakError(MERError):
    """A split would put one subject (or clip) on two sides: the result could not be trusted."""


class Preempted(SystemExit):
    """SIGTERM (a cluster preempting the job): stop, keeping what finished; exit status 143 (128 + 15)."""

    def __init__(self, message: str = "stopped by SIGTERM"):
        super().__init__(143)
        self.message = message

    def __str__(self) -> str:
        return self.message


def user_error(err: BaseException | None) -> MERError | None:
    """The MERError behind an exception, if any: Hydra wraps errors raised in instantiated
    constructors in `InstantiationException`, the protocol wraps a fold's failure; the cause is
    what the user must read."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, MERError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def unknown_key(err: BaseException | None) -> str | None:
    """The name in "got an unexpected keyword argument 'x'" behind an exception (a mistyped config key
    reaching a strict constructor through Hydra), else None."""
    import re

    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, TypeError):
            match = re.search(r"unexpected keyword argument '([^']+)'", str(err))
            if match:
                return match.group(1)
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def exit_on_user_error(task):
    """Decorate an entry point's task function: a MERError (however wrapped) becomes one
    `error: ...` line on stderr and exit status 2."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except Exception as err:
            cause = user_error(err)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper


# -- SIGTERM ---------------------------------------------------------------------------------------
_received = threading.Event()


def _on_sigterm(signum, frame) -> None:
    _received.set()
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:  # no Lightning loop running: stop here
        raise Preempted()
    # inside trainer.fit/validate/test Lightning's handler runs first and stops the loop at the next
    # batch boundary (SIGTERMException, after `last.ckpt` is saved); `raise_if_preempted` catches the rest


def raise_if_preempted() -> None:
    """After a trainer call: a SIGTERM that Lightning let pass (last batch) still stops the run."""
    if _received.is_set():
        raise Preempted()


@contextmanager
def sigterm_stops_run():
    """SIGTERM raises `Preempted` (exit 143) so the run can say where to resume, instead of dying
    silently mid-write; the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
