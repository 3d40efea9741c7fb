"""Structured logging: one JSON object per line (or readable lines on a terminal).

An exception logged (``log.exception(...)``, or a standard library record with ``exc_info``, as
uvicorn writes for a failed request) carries its whole stack: in JSON as the ``exception``
field's text, on a terminal as a formatted traceback. Neither shows local variables, which may
hold phone numbers.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "INFO", json: bool | None = None) -> None:
    """Routes structlog and the standard library's loggers through one renderer."""
    json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.typing.Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        formatter = structlog.dev.RichTracebackFormatter(show_locals=False)
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=formatter)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if json:
        # The traceback as text while the exception is still at hand; the renderer would write
        # the bare traceback object's repr.
        shared.append(structlog.processors.format_exc_info)
    structlog.configure(
        processors=[
            # First: a call below the level is dropped before any other work (the time stamp,
            # the context), as cheaply as the standard library drops it. Not in ``shared``:
            # the standard library's records arrive already filtered, and without a logger.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if root.level > logging.DEBUG:
        # httpx logs each request at INFO: a JSON line per RPC call is noise that costs time on
        # the busy path; its warnings still show.
        logging.getLogger("httpx").setLevel(logging.WARNING)
