"""This replica's leases: taken, renewed and released on a background thread, and the fenced
checkpoint moves of the executions.

Every `renew` seconds (a third of the lease by default) the keeper writes its heartbeat, reads
every lease (real-time `_mget`) and the live heartbeats, then renews what it holds up to its fair
share, releases the surplus and takes free leases (`detector.schedule.leases.decide`). Like
Kibana's Task
Manager, which stops running a task whose claim it cannot extend, a replica starts an execution
only while its last successful renewal is recent enough that the lease cannot have expired
before the execution begins (`may_start`): a replica that cannot reach Elasticsearch, or was
paused, stops on its own before another can take the lease over.

A checkpoint moves with a conditional write of the lease document on the version this replica
last wrote, under the rule's lock (so the renewal thread never races it): a replica that lost
the lease gets a 409 and its move is refused (*fenced*), whatever it believed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from detector.datemath import parse_interval
from detector.errors import ConflictError, DetectorError
from detector.execution_log.lease_store import LeaseStore
from detector.rules import Rule
from detector.schedule import leases
from detector.schedule.leases import Lease, Version
from detector.service.checkpoints import FAILED, FENCED, MOVED
from detector.settings import Settings
from detector.times import iso

if TYPE_CHECKING:
    from detector.metrics import Metrics

log = logging.getLogger(__name__)

# Heartbeats become searchable after a refresh (1 s by default): wait that long before the first
# claim, so replicas starting together see each other and do not take every rule at once.
FIRST_CLAIM_DELAY = 1.2


def replica_id(settings: Settings) -> str:
    """This process's replica id: `DETECTOR_REPLICA_ID`, else host:pid."""
    return settings.replica_id or f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Held:
    version: Version
    checkpoint: datetime | None
    confirmed: float  # monotonic time at which the last successful write was sent


class Keeper:
    """The leases one replica holds over `rules`; the runner's checkpoints under `detector
    run` (`detector.service.checkpoints.Checkpoints`)."""

    def __init__(
        self,
        store: LeaseStore,
        rules: Sequence[Rule],
        replica: str,
        lease: timedelta,
        renew: timedelta,
        metrics: Metrics | None = None,
    ) -> None:
        self.store, self.replica, self.metrics = store, replica, metrics
        self.rules = {rule.rule_id: rule for rule in rules}
        self.lease, self.renew = lease, renew
        self.on_acquired: Callable[[str], None] | None = None
        self._held: dict[str, _Held] = {}
        self._locks = {rule_id: threading.Lock() for rule_id in self.rules}
        self._busy: set[str] = set()
        self._stopping = threading.Event()
        self._draining = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what the runner asks -------------------------------------------------------------

    def scheduled(self, current: datetime, interval: timedelta) -> datetime:
        """The rule's grid slot at or before `current`: the same on every replica."""
        return leases.grid_floor(current, interval)

    def may_start(self, rule_id: str) -> bool:
        """Whether this replica holds the rule's lease safely enough to start an execution
        (and is not stopping)."""
        held = self._held.get(rule_id)
        margin = (self.lease - self.renew).total_seconds()
        fresh = held is not None and time.monotonic() - held.confirmed < margin
        return fresh and not self.draining

    @property
    def draining(self) -> bool:
        """Whether the replica is stopping: it starts no execution and takes no lease."""
        return self._draining.is_set()

    def drain(self) -> None:
        """Stop starting executions and taking leases (SIGTERM); the held ones are kept,
        renewed, until `stop` releases them once the running executions have finished."""
        self._draining.set()

    def checkpoint(self, rule_id: str) -> datetime | None:
        """The rule's checkpoint as this replica holds it."""
        held = self._held.get(rule_id)
        return None if held is None else held.checkpoint

    def held(self) -> list[str]:
        """The rules whose lease this replica holds."""
        return sorted(self._held)

    @contextmanager
    def running(self, rule_id: str) -> Iterator[None]:
        """Mark the rule as executing, so its lease is not released as surplus meanwhile."""
        self._busy.add(rule_id)
        try:
            yield
        finally:
            self._busy.discard(rule_id)

    def move_checkpoint(self, rule: Rule, now: datetime) -> str:
        """Move the rule's checkpoint to `now` (and renew the lease) if this replica still
        holds it: `moved`, `fenced` (the lease was taken over) or `failed` (unreachable)."""
        with self._locks[rule.rule_id]:
            held = self._held.get(rule.rule_id)
            if held is None:
                return FENCED
            sent = time.monotonic()
            try:
                version = self._write(rule, self.replica, now, held.version)
            except ConflictError:
                self._lose(rule.rule_id, f"its checkpoint move to {iso(now)} was refused")
                return FENCED
            except DetectorError as exc:
                log.error(
                    "rule %s: could not move the checkpoint to %s: %s", rule.rule_id, iso(now), exc
                )
                return FAILED
            self._held[rule.rule_id] = _Held(version, now, sent)
            return MOVED

    # --- the background thread -------------------------------------------------------------

    def announce(self) -> None:
        """Write this replica's heartbeat (it is live for one lease period)."""
        self._heartbeat(datetime.now(UTC))

    def start(self) -> None:
        """Announce this replica, then keep the leases on a daemon thread."""
        self.announce()
        self._thread = threading.Thread(target=self._loop, name="detector-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing, release every held lease at once and say this replica left."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew.total_seconds() + 30)
        for rule_id in self.held():
            self._release(rule_id)
        now = datetime.now(UTC)
        try:
            self.store.heartbeat(self.replica, now, now, 0)
        except DetectorError as exc:
            log.warning("could not withdraw the heartbeat of replica %s: %s", self.replica, exc)
        self._gauge()

    def _loop(self) -> None:
        if self._stopping.wait(FIRST_CLAIM_DELAY):
            return
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                self.cycle()
            except Exception:  # a dead renewal thread would silently stop the replica
                log.exception("lease round of replica %s failed", self.replica)
            # Rounds start every `renew` s, however long one took: waiting `renew` after a slow
            # round would let the lease age past `may_start`'s margin (or expire) in between.
            self._stopping.wait(max(self.renew.total_seconds() - (time.monotonic() - began), 0))

    def cycle(self) -> None:
        """One round: heartbeat, read, then renew, release and take leases."""
        now = datetime.now(UTC)
        try:
            self._heartbeat(now)
            current = self.store.read(list(self.rules))
            beats = self.store.heartbeats(now)
        except DetectorError as exc:
            log.warning(
                "replica %s cannot reach Elasticsearch to renew its %d lease(s): %s",
                self.replica,
                len(self._held),
                exc,
                extra={"replica_id": self.replica},
            )
            return
        for rule_id in self.held():
            holder = current[rule_id].holder
            if holder != self.replica:
                self._lose(rule_id, f"it is now held by {holder}")
        live = leases.live_replicas(beats, current.values(), self.replica, now)
        decision = leases.decide(self.replica, current.values(), live, now, frozenset(self._busy))
        for rule_id in decision.release:
            self._release(rule_id)
        taken = () if self.draining else decision.take
        for rule_id in (*decision.renew, *taken):
            self._claim(current[rule_id], now)
        self._gauge()

    # --- writes ----------------------------------------------------------------------------

    def _claim(self, lease: Lease, now: datetime) -> None:
        """Renew (held) or take (free) the lease, conditionally on the version known. Its
        freshness (`may_start`) counts from just before this write, whose expiry is computed
        after that moment, not from the round's start: the round's reads (heartbeat, leases,
        heartbeats) over a slow network would otherwise use up the margin before the lease is
        even written, and the replica would start no execution at all."""
        rule = self.rules[lease.rule_id]
        with self._locks[rule.rule_id]:
            held = self._held.get(rule.rule_id)
            version = held.version if held is not None else lease.version
            checkpoint = held.checkpoint if held is not None else lease.checkpoint
            try:
                if version is None:
                    checkpoint = self._first_checkpoint(rule, now)
                sent = time.monotonic()
                written = self._write(rule, self.replica, checkpoint, version)
            except ConflictError:
                if held is not None:
                    self._lose(rule.rule_id, "its renewal was refused")
                return
            except DetectorError as exc:
                log.warning("rule %s: could not renew or take its lease: %s", rule.rule_id, exc)
                return
            self._held[rule.rule_id] = _Held(written, checkpoint, sent)
        if held is None:
            self._announce_taken(lease, checkpoint)

    def _first_checkpoint(self, rule: Rule, now: datetime) -> datetime:
        """Where a rule's first lease starts: the checkpoint `detector once` (or a version
        without leases) left, else the grid time before the latest one, so the rule's first
        execution is the latest grid time and, if it fails, is retried like any other."""
        legacy = self.store.legacy_checkpoint(rule.rule_id)
        if legacy is not None:
            return legacy
        interval = parse_interval(rule.interval)
        return leases.grid_floor(now, interval) - interval

    def _announce_taken(self, lease: Lease, checkpoint: datetime | None) -> None:
        log.info(
            "replica %s took the lease of rule %s (previous holder %s, checkpoint %s)",
            self.replica,
            lease.rule_id,
            lease.holder or "none",
            iso(checkpoint) if checkpoint else "none",
            extra={"replica_id": self.replica, "rule_id": lease.rule_id},
        )
        if self.on_acquired is not None:
            self.on_acquired(lease.rule_id)

    def _release(self, rule_id: str) -> None:
        """Give the lease up now (expiry = now), keeping the checkpoint, so another replica
        takes it at its next round instead of after expiry."""
        rule = self.rules[rule_id]
        with self._locks[rule_id]:
            held = self._held.pop(rule_id, None)
            if held is None:
                return
            now = datetime.now(UTC)
            try:
                self.store.write(
                    rule,
                    None,
                    now=now,
                    expires=now,
                    checkpoint=held.checkpoint,
                    version=held.version,
                )
            except DetectorError as exc:
                log.warning("rule %s: could not release its lease: %s", rule_id, exc)
                return
        log.info(
            "replica %s released the lease of rule %s",
            self.replica,
            rule_id,
            extra={"replica_id": self.replica, "rule_id": rule_id},
        )

    def _write(
        self, rule: Rule, holder: str, checkpoint: datetime | None, version: Version | None
    ) -> Version:
        now = datetime.now(UTC)
        return self.store.write(
            rule, holder, now=now, expires=now + self.lease, checkpoint=checkpoint, version=version
        )

    def _lose(self, rule_id: str, why: str) -> None:
        if self._held.pop(rule_id, None) is not None:
            log.warning(
                "replica %s lost the lease of rule %s: %s; it starts no execution of it",
                self.replica,
                rule_id,
                why,
                extra={"replica_id": self.replica, "rule_id": rule_id},
            )

    def _heartbeat(self, now: datetime) -> None:
        self.store.heartbeat(self.replica, now, now + self.lease, len(self._held))

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.set_leases(self.replica, len(self._held))
