"""Leader election on a `coordination.k8s.io` Lease, for several replicas of the operator (HA): one holds
the Lease and runs the operator; the others run nothing but this election until it is theirs.

Whether the holder is gone is judged by how long *this* replica has seen the Lease unchanged, on its own
monotonic clock — never by the times another replica wrote into it. Clocks that disagree between nodes
cannot make two leaders (the flaw of heartbeats compared with one's own clock). A leader that cannot
renew within `renew_deadline` stops (cli.py exits the process) before a standby could take over:
`renew_deadline` < `duration`. Every write is conditional on the resourceVersion read, so two standbys
taking over at once make one leader.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException


def _micro_time(now: dt.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaseElector:
    """Acquire and renew the Lease `name` in `namespace` as `identity`. `api` is a CoordinationV1Api (or
    anything with its read/create/replace_namespaced_lease); `clock` a monotonic clock in seconds."""

    api: Any
    namespace: str
    name: str
    identity: str
    duration: int = 15  # a holder unseen to renew for this long is gone
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    _seen_version: str | None = field(default=None, init=False)
    _seen_at: float = field(default=0.0, init=False)

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this replica holds the Lease afterwards."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                return False
            return self._write(None, transitions=0, acquired=self.wall())
        now = self.clock()
        version = lease.metadata.resource_version
        if version != self._seen_version:  # changed since the last look: the holder is alive as of now
            self._seen_version, self._seen_at = version, now
        spec = lease.spec
        holder = spec.holder_identity or ""
        ours = holder == self.identity
        lasts = spec.lease_duration_seconds or self.duration
        if holder and not ours and now < self._seen_at + lasts:
            return False  # held, and renewed within its duration as seen from here
        transitions = (spec.lease_transitions or 0) + (0 if ours else 1)
        acquired = spec.acquire_time if ours and spec.acquire_time else self.wall()
        return self._write(lease, transitions=transitions, acquired=acquired)

    def _write(self, lease: Any, *, transitions: int, acquired: Any) -> bool:
        now = self.wall()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": _micro_time(acquired) if isinstance(acquired, dt.datetime) else acquired,
                "renewTime": _micro_time(now),
                "leaseTransitions": transitions,
            },
        }
        try:
            if lease is None:
                written = self.api.create_namespaced_lease(self.namespace, body)
            else:
                body["metadata"]["resourceVersion"] = lease.metadata.resource_version
                written = self.api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException:  # 409: another replica wrote first; anything else: not ours this time
            return False
        self._seen_version, self._seen_at = written.metadata.resource_version, self.clock()
        return True

    def release(self) -> None:
        """Give the Lease up (a graceful stop): a standby takes over at its next attempt, not after `duration`."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "resourceVersion": lease.metadata.resource_version,
                },
                "spec": {
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "leaseTransitions": lease.spec.lease_transitions or 0,
                },
            }
            self.api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException:
            pass  # gone or taken: nothing to give up
