"""What masking secrets costs a log line, with 10 and with 10,000 values held at once.

Every log record in a RoleUp process goes through `bot.logging_setup.redact`: the fixed secret
shapes, then every value held with `secret_in_flight` (passwords and keys in flight). The old
registry was a regular expression of every value, rebuilt on the logging path: its cost grew
with the number of values. This benchmark measures, in one run and in this process:

(a) `redact` of typical log lines with 10 values held;
(b) the same with 10,000 values held (the registry's bound);
(c) for comparison, the old way: one alternation of the 10,000 values (`re.sub`), compiled
    beforehand so only the per-line cost is counted.

It prints microseconds per line (best of --repeat rounds), the ratio (b)/(a) and (c)/(b), and
how long holding one more value takes at 10,000 (the automaton is rebuilt then, off the logging
path). Target: (b) within --target-ratio of (a). Exit status 1 if it is missed or a held value
was not masked.

    .venv/bin/python bench/mask.py
    .venv/bin/python bench/mask.py --lines 20000 --repeat 7
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/mask.py`
    sys.path.insert(0, str(ROOT))

from bot.logging_setup import (  # noqa: E402
    MASK,
    SecretRegistry,
    SecretRegistryFull,
    redact,
    registry,
)

# What RoleUp's log lines look like: short, with ids, names, paths and now and then a secret.
LINES = (
    "invite 42 answered on the web: request 3f2a9c1e-1111-2222-3333-444455556666",
    '127.0.0.1 - - [01/Dec/2026 10:00:00] "GET /healthz HTTP/1.1" 200 -',
    "sync prod: 5000 users, 40 groups, 3 added, 1 removed, took 2.41s",
    "request 3f2a9c1e-1111-2222-3333-444455556666 approved by U012ABCDEF (1 of 1)",
    "could not post to C0123456789: channel_not_found",
    "integration prod cannot read the password policy",
    "creating login profile for new.bie in /engineering/ with PasswordResetRequired",
    "refused a request to /slack/events: bad or stale signature",
)


def held_values(count: int) -> list[str]:
    # Like chosen passwords: 16 to 24 printable characters.
    return [secrets.token_urlsafe(12 + i % 6) + "!A1" for i in range(count)]


def per_line(mask: Callable[[str], str], lines: list[str], repeat: int) -> float:
    """Best of `repeat` rounds, in microseconds per line."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for line in lines:
            mask(line)
        best = min(best, time.perf_counter() - started)
    return best / len(lines) * 1e6


def measure(held: int, lines: list[str], repeat: int) -> tuple[float, float]:
    """(µs per line of `redact`, ms to hold one more value) with `held` values held."""
    values = held_values(held)
    live = registry()
    original_limit = live.limit
    live.limit = max(original_limit, held + 1)
    live.add_all(values)
    try:
        probe = f"leaked {values[held // 2]} here"
        if values[held // 2] in redact(probe) or MASK not in redact(probe):
            raise SystemExit(f"a held value was not masked with {held} held")
        micros = per_line(redact, lines, repeat)
        extra = held_values(1)[0] + "x"
        started = time.perf_counter()
        live.add(extra)
        add_ms = (time.perf_counter() - started) * 1000
        live.discard(extra)
    finally:
        live.discard_all(values)
        live.limit = original_limit
    return micros, add_ms


def old_way(held: int, lines: list[str], repeat: int) -> float:
    ordered = sorted(held_values(held), key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(v) for v in ordered))
    few = lines[: max(50, len(lines) // 20)]  # it is slow: fewer lines give the same figure
    return per_line(lambda text: pattern.sub(MASK, text), few, repeat)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000, help="log lines per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is kept")
    parser.add_argument("--many", type=int, default=10_000, help="values held in (b)")
    parser.add_argument("--target-ratio", type=float, default=2.0, help="(b)/(a) at most")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lines = [LINES[i % len(LINES)] for i in range(args.lines)]
    if len(registry()):
        raise SystemExit("the registry is not empty: run this in a process of its own")
    few_us, few_add = measure(10, lines, args.repeat)
    many_us, many_add = measure(args.many, lines, args.repeat)
    old_us = old_way(args.many, lines, args.repeat)
    ratio = many_us / few_us
    print(f"log lines: {args.lines} a round, best of {args.repeat}")
    rows = (
        ("(a) redact, 10 values held", few_us, few_add),
        (f"(b) redact, {args.many} values held", many_us, many_add),
        (f"(c) old alternation, {args.many} values", old_us, None),
    )
    for label, micros, add_ms in rows:
        extra = f"   hold one more {add_ms:7.2f} ms" if add_ms is not None else ""
        print(f"{label:<36} {micros:9.2f} µs/line{extra}")
    print(f"(b)/(a) = {ratio:.2f} (target <= {args.target_ratio})")
    print(f"(c)/(b) = {old_us / many_us:.0f}")
    # A registry of its own shows the bound: no eviction, a refusal.
    bounded = SecretRegistry(limit=2)
    bounded.add_all(["first-value", "second-value"])
    try:
        bounded.add("third-value")
    except SecretRegistryFull:
        kept = bounded.mask("first-value second-value") == f"{MASK} {MASK}"
        print(f"full registry: refuses the next value; held ones still masked: {kept}")
    return 0 if ratio <= args.target_ratio else 1


if __name__ == "__main__":
    raise SystemExit(main())
