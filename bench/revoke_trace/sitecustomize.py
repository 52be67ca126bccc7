"""`bench/revoke.py --trace`: when the server starts with this folder on PYTHONPATH and
ROLEUP_BENCH_TRACE set to a folder, every call of the functions named below is noted there
(name, thread, start and end on the monotonic clock, one file per process). Python imports a
`sitecustomize` module at start-up by itself; the product never imports this one."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

TRACED = (
    ("flask.app", "Flask.wsgi_app"),
    ("bot.services.approvals", "decide"),
    ("bot.services.approvals", "_read_for_decision"),
    ("bot.services.approvals", "_check_decider"),
    ("bot.services.approvals", "_with_quorum_as_of_now"),
    ("bot.services.approvals", "_run_loaded"),
    ("bot.services.offboard_steps", "get_user"),
    ("bot.services.offboard_steps", "_cut_access"),
    ("botocore.client", "BaseClient._make_api_call"),
)


def _traced(name: str, function: Callable[..., Any], folder: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def traced(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            end = time.monotonic()
            line = f"{name}\t{threading.current_thread().name}\t{start:.6f}\t{end:.6f}\n"
            with open(os.path.join(folder, f"{os.getpid()}.tsv"), "a") as out:
                out.write(line)

    return traced


def _install(folder: str) -> None:
    # `python -m bot` puts its folder first only after this module ran: the server's code is
    # the checkout's, not an installed copy.
    sys.path.insert(0, os.getcwd())
    for module_name, path in TRACED:
        owner: Any = importlib.import_module(module_name)
        *outer, attribute = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        setattr(owner, attribute, _traced(path, getattr(owner, attribute), folder))


if os.environ.get("ROLEUP_BENCH_TRACE"):
    _install(os.environ["ROLEUP_BENCH_TRACE"])
