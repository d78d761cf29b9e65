"""User-facing errors: one clear, actionable message, no traceback wall."""

from __future__ import annotations

import functools
import logging
import sys

log = logging.getLogger(__name__)


class MERError(Exception):
    """A problem with the user's input (config, paths, data) that they can fix.

    The message says what was wrong, where (file, row, path) and what to do about it.
    Entry points print it on one line and exit with status 2 instead of a traceback.
    """


class LeakError(MERError):
    """A split would put one subject (or clip) on two sides: the result could not be trusted."""


def exit_on_user_error(task):
    """Decorate an entry point's task function: a MERError becomes `error: ...` and exit 2."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except MERError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    return wrapper
