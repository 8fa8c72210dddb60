"""Progress bars that show no empty bar: a verb whose checks fail before any work (no splits, an
output it cannot open, a store it cannot write) prints its one-line error alone."""

from __future__ import annotations


def bar(*columns, **kwargs):
    """A rich ``Progress`` that ``start()`` (and ``with``) only arms: it is shown at its first
    ``update`` or ``advance`` of a task whose total is not 0 (a spinner's is None), or at a task added
    with a total above 0; a run with nothing to do shows no ``0/0`` bar. A verb whose checks fail
    before any work (no splits, an output it cannot open) prints its one-line error, not an empty bar."""
    global _BAR
    if _BAR is None:
        _BAR = _bar_class()
    return _BAR(*columns, **kwargs)


_BAR = None


def _bar_class():
    from rich.progress import Progress  # on first use: the verbs that show no bar never import it

    class Bar(Progress):
        def __init__(self, *columns, **kwargs):
            super().__init__(*columns, **kwargs)
            self._armed = False

        def start(self) -> None:
            self._armed = True

        def stop(self) -> None:
            self._armed = False
            if self.live.is_started:
                super().stop()

        def _show(self, task_id=None) -> None:
            if task_id is not None and self._tasks[task_id].total == 0:
                return
            with self._lock:
                if self._armed and not self.live.is_started and not self.disable:
                    super().start()

        def add_task(self, description, *args, **kwargs):
            task = super().add_task(description, *args, **kwargs)
            if self._tasks[task].total:
                self._show()
            return task

        def update(self, task_id, **kwargs) -> None:
            super().update(task_id, **kwargs)
            self._show(task_id)

        def advance(self, task_id, advance: float = 1) -> None:
            super().advance(task_id, advance)
            self._show(task_id)

    return Bar
