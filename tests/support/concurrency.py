"""Real threads started together, for tests that one of many concurrent calls wins."""

from __future__ import annotations

import threading


def race(count, work):
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


MEETING_SECONDS = 10  # how long a held call waits for the others before it is called alone


class Rendezvous:
    """Holds the first call of each named operation until `size` of them have arrived."""

    def __init__(self, operations: list[str], size: int) -> None:
        self.size = size
        self.arrived: list[str] = []
        self.threads: set[int] = set()
        self.alone: list[str] = []
        self._lock = threading.Lock()
        self._met = threading.Event()
        self.hooks = {op: self._hook(op) for op in operations}

    def _hook(self, operation: str):
        def hold() -> None:
            with self._lock:
                self.threads.add(threading.get_ident())
                if operation in self.arrived or self._met.is_set():
                    return
                self.arrived.append(operation)
                if len(self.arrived) >= self.size:
                    self._met.set()
            if not self._met.wait(MEETING_SECONDS):
                self.alone.append(operation)

        return hold
