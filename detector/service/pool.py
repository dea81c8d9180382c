"""Many rules at once: a small thread pool shared by the rules of one `detector once`.

At most `rule_concurrency` executions run at the same time, so the load on the cluster is
bounded whatever the number of rules (Kibana's Task Manager bounds it the same way, with its
`xpack.task_manager.max_workers`). Each worker thread has its own `Elastic` (client and
connections): an execution's request count (`Elastic.stats`) is then its own, never mixed with
an execution running beside it on another thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from detector.es.client import Elastic
from detector.notify.routing import Routing
from detector.results import ExecutionResult
from detector.rules import Rule
from detector.service.runner import Runner
from detector.settings import Settings

Execution = Callable[[Runner, Rule], ExecutionResult]


class _Workers:
    """One runner per worker thread, created on its first rule, closed with the pool."""

    def __init__(
        self,
        settings: Settings,
        routing: Routing | None,
        closing: ExitStack,
        connect: Callable[[Settings], Elastic],
    ) -> None:
        self.settings, self.routing = settings, routing
        self.connect = connect
        self.closing = closing
        self.local = threading.local()
        self.lock = threading.Lock()

    def runner(self) -> Runner:
        runner: Runner | None = getattr(self.local, "runner", None)
        if runner is None:
            elastic = self.connect(self.settings)
            with self.lock:
                self.closing.enter_context(elastic)
            runner = Runner.for_settings(elastic, self.settings, routing=self.routing)
            self.local.runner = runner
        return runner


def run_rules(
    settings: Settings,
    rules: Sequence[Rule],
    execution: Execution,
    connect: Callable[[Settings], Elastic] = Elastic,
    routing: Routing | None = None,
) -> Iterator[ExecutionResult]:
    """`execution` of each rule, at most `settings.rule_concurrency` at once; the results in the
    rules' order (as each becomes available). The caller has created the indices; `connect`
    makes each worker's `Elastic`; alerts are created pending for `routing`'s channels."""
    with ExitStack() as closing:
        workers = _Workers(settings, routing, closing, connect)
        size = max(1, min(settings.rule_concurrency, len(rules)))
        with ThreadPoolExecutor(max_workers=size, thread_name_prefix="rule") as pool:
            yield from pool.map(lambda rule: execution(workers.runner(), rule), rules)
