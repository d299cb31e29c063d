"""The live demo's predictions: bounded admission and micro-batched forward passes.

    batcher = Batcher(predictor, BatchSettings(max_batch=8))
    with batcher.admit():                      # Overloaded (-> 503 + Retry-After) when full
      outputs = batcher.submit(image).result() # {task: output} of this image

A request is admitted while fewer than `max_queue` are waiting or running, and answered 503 with
a `Retry-After` estimate otherwise, so a burst cannot pile up unbounded work or latency. Admitted
images go into one queue; `workers` threads (1 by default: the forward pass already uses every
core) each take the first waiting image, wait at most `max_wait_ms` for others to arrive, and run
up to `max_batch` of them as one batch through `predict.predict_batch` (one forward pass per
network when the predictor is batched). A batch is padded to the next of `batch_sizes`, so a
jitted network compiles one program per size, not one per number of waiting requests.

The batcher has its own threads, never the web server's thread pool, and no lock the solver
takes: `/api/solve` does not wait behind predictions. It is also independent of any event loop:
`submit` returns a `concurrent.futures.Future` that async code awaits via `asyncio.wrap_future`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from taskonomy_jax.taskbank import predict


class Overloaded(Exception):
  """The prediction queue is full; `retry_after` is a whole number of seconds to wait."""

  def __init__(self, retry_after: int, capacity: int):
    super().__init__(f"the server is busy: {capacity} predictions are already waiting or "
                     f"running; retry in about {retry_after} s")
    self.retry_after = retry_after
    self.capacity = capacity


def _powers_of_two(limit: int) -> tuple[int, ...]:
  sizes = [1]
  while sizes[-1] * 2 < limit:
    sizes.append(sizes[-1] * 2)
  return tuple(sorted({*sizes, limit}))


@dataclasses.dataclass(frozen=True)
class BatchSettings:
  """How predictions are queued and batched.

  `max_batch=1, workers=1` is the former one-at-a-time behaviour (each request its own forward
  pass, one at a time); the benchmark `benchmarks/web_load.py` runs both.
  """

  max_batch: int = 8  # images in one forward pass
  batch_sizes: tuple[int, ...] | None = None  # padded sizes; default: 1, 2, 4, ... max_batch
  max_wait_ms: float = 5.0  # how long a batch waits for more requests once one arrived
  workers: int = 1  # forward passes at once
  max_queue: int = 64  # requests waiting or running before new ones get 503
  post_workers: int = 2  # threads decoding uploads and drawing outputs (not the forward pass)

  def __post_init__(self):
    for name in ("max_batch", "workers", "max_queue", "post_workers"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
    if not math.isfinite(self.max_wait_ms) or self.max_wait_ms < 0:
      raise ValueError(f"max_wait_ms must be a number >= 0, got {self.max_wait_ms}")
    if self.batch_sizes is not None:
      sizes = tuple(sorted(set(self.batch_sizes)))
      if not sizes or sizes[0] < 1 or sizes[-1] != self.max_batch:
        raise ValueError(f"batch_sizes {self.batch_sizes} must be positive and end at "
                         f"max_batch ({self.max_batch})")
      object.__setattr__(self, "batch_sizes", sizes)

  @property
  def sizes(self) -> tuple[int, ...]:
    """The padded batch sizes, ascending; the last is `max_batch`."""
    return self.batch_sizes or _powers_of_two(self.max_batch)

  def padded(self, n: int) -> int:
    """The batch size `n` images are padded to."""
    return next(s for s in self.sizes if s >= n)


@dataclasses.dataclass
class _Item:
  image: np.ndarray
  future: concurrent.futures.Future


class Batcher:
  """Runs a `predict.Predictor` on micro-batches of queued images (see the module docstring)."""

  def __init__(self, predictor: predict.Predictor, settings: BatchSettings = BatchSettings(),
               warmup: np.ndarray | None = None,
               after_warmup: Callable[[np.ndarray, dict[str, np.ndarray]], object] | None = None):
    """`warmup`: an image (R, R, 3) run once at every padded batch size before the first
    request, so no request pays for compiling a batch size (the workers do it in the
    background; requests queue behind it). `after_warmup(image, outputs)` is then called once
    with its outputs (the service draws them: first drawings load fonts and libraries)."""
    self.predictor = predictor
    self.settings = settings
    self._warmup = warmup
    self._after_warmup = after_warmup
    self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
    self._lock = threading.Lock()
    self._admitted = 0
    self._threads: list[threading.Thread] = []
    self._closed = False
    self._warm = threading.Event()  # set once the warm-up (if any) is done
    if warmup is None:
      self._warm.set()
    self._seconds_per_batch = 1.0  # running estimate for Retry-After, refined by each batch
    self.calls = 0  # forward passes run (batches), for tests and the benchmark
    self.images = 0  # real images run (padding not counted)
    self.batch_counts: collections.deque[int] = collections.deque(maxlen=1024)  # latest batches

  # --- admission ------------------------------------------------------------------------------

  @contextlib.contextmanager
  def admit(self) -> Iterator[None]:
    """Holds one of `max_queue` places for a request's whole life (decode, forward, drawing).

    Raises:
      Overloaded: every place is taken.
    """
    with self._lock:
      if self._admitted >= self.settings.max_queue:
        raise Overloaded(self.retry_after(), self.settings.max_queue)
      self._admitted += 1
    try:
      yield
    finally:
      with self._lock:
        self._admitted -= 1

  def retry_after(self) -> int:
    """Seconds until the queue has drained by one batch per worker, rounded up (at least 1)."""
    s = self.settings
    batches = math.ceil(self._admitted / (s.max_batch * s.workers))
    return max(1, math.ceil(batches * self._seconds_per_batch))

  @property
  def admitted(self) -> int:
    return self._admitted

  # --- the queue ------------------------------------------------------------------------------

  def submit(self, image: np.ndarray) -> concurrent.futures.Future:
    """Queues one prepared image (R, R, 3); the future's result is `{task: output}`."""
    if self._closed:
      raise RuntimeError("the batcher is closed")
    self.start()
    item = _Item(np.asarray(image, np.float32), concurrent.futures.Future())
    self._queue.put(item)
    return item.future

  def close(self) -> None:
    """Stops the workers once the queued images are done."""
    with self._lock:
      self._closed = True
      threads, self._threads = self._threads, []
    for _ in threads:
      self._queue.put(None)
    for t in threads:
      t.join(timeout=60)

  def start(self) -> None:
    """Starts the workers (and the warm-up); `submit` does it on first use. Not in __init__:
    a service that never predicts runs no threads."""
    with self._lock:
      if self._threads or self._closed:
        return
      warm = threading.Lock()  # the first worker warms up; the others wait for it
      warm.acquire()
      for k in range(self.settings.workers):
        t = threading.Thread(target=self._worker, args=(k == 0, warm), daemon=True,
                             name=f"predict-batcher-{k}")
        t.start()
        self._threads.append(t)

  def _worker(self, first: bool, warm: threading.Lock) -> None:
    if first:
      try:
        self._run_warmup()
      finally:
        warm.release()
    else:
      with warm:
        pass
    wait = self.settings.max_wait_ms / 1000
    while True:
      item = self._queue.get()
      if item is None:
        return
      batch = [item]
      deadline = time.monotonic() + wait
      while len(batch) < self.settings.max_batch:
        # Requests already queued (they arrived during the last forward pass) join at once;
        # otherwise wait for stragglers until the deadline.
        try:
          nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
          break
        if nxt is None:  # close(): finish this batch, then stop
          self._queue.put(None)
          break
        batch.append(nxt)
      self._run(batch)

  def _run_warmup(self) -> None:
    if self._warmup is None:
      return
    image = np.asarray(self._warmup, np.float32)
    try:
      for size in self.settings.sizes:
        outputs = predict.predict_batch(self.predictor, np.repeat(image[None], size, axis=0))
      if self._after_warmup is not None:
        self._after_warmup(image, {name: out[0] for name, out in outputs.items()})
    except Exception:  # a broken predictor fails the requests instead, with its message
      pass
    finally:
      self._warm.set()

  @property
  def warm(self) -> bool:
    """Whether the warm-up is done (or there is none)."""
    return self._warm.is_set()

  def status(self) -> dict:
    """The queue's state and settings, for `/api/status` and the benchmark."""
    s = self.settings
    return {"warm": self.warm, "admitted": self._admitted, "max_queue": s.max_queue,
            "max_batch": s.max_batch, "batch_sizes": list(s.sizes), "max_wait_ms": s.max_wait_ms,
            "workers": s.workers, "forward_passes": self.calls,
            "images": self.images}

  def _run(self, batch: list[_Item]) -> None:
    # A request whose client went away (its future cancelled) is dropped before the pass.
    batch = [it for it in batch if it.future.set_running_or_notify_cancel()]
    if not batch:
      return
    n = len(batch)
    images = np.stack([it.image for it in batch])
    size = self.settings.padded(n)
    if size > n:  # zeros: rows of a batch are independent (inference mode), so any filler does
      images = np.concatenate([images, np.zeros((size - n, *images.shape[1:]), images.dtype)])
    start = time.monotonic()
    try:
      outputs = predict.predict_batch(self.predictor, images)
    except BaseException as e:  # every waiting request gets the error, whatever it is
      for it in batch:
        it.future.set_exception(e)
      return
    finally:
      self._seconds_per_batch = 0.7 * self._seconds_per_batch + 0.3 * (time.monotonic() - start)
      with self._lock:
        self.calls += 1
        self.images += n
        self.batch_counts.append(n)
    for k, it in enumerate(batch):
      it.future.set_result({name: out[k] for name, out in outputs.items()})
