"""Overlapping file work with compute: an ordered prefetcher and a fail-fast background writer.

Reading (JPEG/PNG decoding, ``torch.load``) and writing (PNG encoding, ``torch.save``, fsync) release
the GIL for most of their time, so one or two threads hide them behind the encoder / decoder. Memory
stays bounded: at most ``ahead`` items are read ahead and ``max_pending`` writes are queued.
"""

from __future__ import annotations

import pickle
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Iterable, Iterator, Optional, Tuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(fn: Callable[[T], R], items: Iterable[T], *, ahead: int = 2, workers: int = 2) -> Iterator[Tuple[T, Optional[R], Optional[BaseException]]]:
    """Yield ``(item, fn(item), None)`` or ``(item, None, error)`` in input order, computing ahead in threads."""
    pending: Deque[Tuple[T, Future]] = deque()
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        def fill() -> None:
            while len(pending) < max(ahead, 1):
                nxt = next(it, _END)
                if nxt is _END:
                    return
                pending.append((nxt, pool.submit(fn, nxt)))

        fill()
        try:
            while pending:
                item, fut = pending.popleft()
                fill()
                try:
                    yield item, fut.result(), None
                except Exception as exc:  # handed to the caller, who decides
                    yield item, None, exc
        finally:
            for _, fut in pending:
                fut.cancel()


class BackgroundWriter:
    """Runs write jobs one at a time, in submission order, in a background thread.

    After the first failure (e.g. a full disk) every later job is skipped, and the error is raised in
    the caller's thread by the next :meth:`submit`, :meth:`check` or :meth:`close`. Jobs must write
    atomically (temporary file + rename), so a failed job leaves no partial file.
    """

    def __init__(self, *, max_pending: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._futures: Deque[Future] = deque()
        self._failed = threading.Event()
        self._error: Optional[BaseException] = None
        self.max_pending = max_pending

    def _run(self, fn: Callable[..., Any], args, kwargs) -> Any:
        if self._failed.is_set():
            return None
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            self._error = exc
            self._failed.set()
            raise

    def check(self) -> None:
        """Raise the first write error, if any; forget finished jobs."""
        while self._futures and self._futures[0].done():
            self._futures.popleft()
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[..., Any], *args, **kwargs) -> None:
        self.check()
        while len(self._futures) >= self.max_pending:
            self._futures[0].exception()  # wait for the oldest
            self.check()
        self._futures.append(self._pool.submit(self._run, fn, args, kwargs))

    def close(self) -> None:
        """Wait for every job; raise the first error."""
        try:
            for fut in list(self._futures):
                fut.exception()
            self.check()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._failed.set()  # an error in the caller: skip what is queued, keep its exception
            self._pool.shutdown(wait=True)


_END = object()


def default_workers() -> int:
    """One worker process per core of this process's share of the machine (its local rank's), at most 16."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(16, cores // max(local, 1)))


def _start_worker(initializer: Optional[Callable[..., None]], initargs: tuple) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core
    if initializer is not None:
        initializer(*initargs)


def _pickled(fn: Callable[..., Any], *args) -> bytes:
    # Plain pickle bytes, not the pipe's pickler: torch's would send every tensor as a shared-memory
    # file descriptor that stays open while the tensor lives, and results kept for a run (thousands
    # of images, a few tensors each) would exhaust the process's descriptors.
    return pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)


class OrderedProcessPool:
    """CPU work in worker processes, its results handed back in submission order.

    ``submit(fn, args, then)`` runs ``fn(*args)`` (a module-level function; arguments are pickled)
    and later calls ``then(result)`` in this process (the result a private copy: tensors in it
    hold no shared memory), in the order of the submissions, from
    :meth:`submit` itself (as earlier results are ready, and blocking while ``2 x workers`` are
    pending) or from :meth:`close`. With ``workers`` 0 or 1 everything runs at once, in this process.
    ``initializer(*initargs)`` runs once in each worker (in this process when there is none), for
    state its tasks read, such as an opened dataset.
    """

    def __init__(self, workers: int, *, initializer: Optional[Callable[..., None]] = None,
                 initargs: tuple = ()) -> None:
        self.workers = workers
        self._pool = None
        self._pending: Deque[Tuple[Future, Callable[[Any], None]]] = deque()
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                             initializer=_start_worker, initargs=(initializer, initargs))
        elif initializer is not None:
            initializer(*initargs)

    def submit(self, fn: Callable[..., R], args: tuple, then: Callable[[R], None]) -> None:
        if self._pool is None:
            then(fn(*args))
            return
        self._pending.append((self._pool.submit(_pickled, fn, *args), then))
        self._drain(block_above=2 * self.workers)

    def _drain(self, block_above: int) -> None:
        while self._pending and (self._pending[0][0].done() or len(self._pending) > block_above):
            fut, then = self._pending.popleft()
            then(pickle.loads(fut.result()))

    def close(self) -> None:
        """Hand back every pending result, then stop the workers."""
        try:
            self._drain(block_above=0)
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> "OrderedProcessPool":
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
        elif self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
