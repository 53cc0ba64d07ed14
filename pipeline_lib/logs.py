"""A job's progress log: light on purpose (no torch), so that figure and summary jobs start fast."""
from __future__ import annotations

import contextlib
import logging
import sys

log = logging.getLogger(__name__)


@contextlib.contextmanager
def logged(path: str | None = None):
    """Send progress to the rule's log file (and stderr); a failure is logged before it propagates."""
    handlers = [logging.StreamHandler(sys.stderr)] + ([logging.FileHandler(path, mode="w")] if path else [])
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        yield
    except Exception:
        log.exception("job failed")
        raise
