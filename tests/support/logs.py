"""Measuring what reaches the logs with only the layer under test in place.

bot.logging_setup masks secrets too (a record factory, a filter on the CLI's root handler), and
an earlier alembic fileConfig() may have disabled library loggers; any of them would hide a
leak from a capture. `without_redaction` sets them aside for one test and puts them back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def without_redaction(loggers: Sequence[str]) -> Iterator[None]:
    root = logging.getLogger()
    cli_handlers = [h for h in root.handlers if getattr(h, "_roleup", False)]
    for handler in cli_handlers:
        root.removeHandler(handler)
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    disabled = {name: logging.getLogger(name).disabled for name in loggers}
    for name in loggers:
        logging.getLogger(name).disabled = False
    try:
        yield
    finally:
        for handler in cli_handlers:
            root.addHandler(handler)
        logging.setLogRecordFactory(factory)
        for name, was in disabled.items():
            logging.getLogger(name).disabled = was
