"""Leader election on a Lease (adapters/lease.py): one leader among the replicas, a standby takes over when
the leader stops renewing, and clocks that disagree between nodes never make two leaders."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from kubernetes.client.exceptions import ApiException

from mlops_operator.adapters.lease import LeaseElector


class LeaseServer:
    """The API server's side of one Lease: reads, creates, and replaces conditional on resourceVersion."""

    def __init__(self) -> None:
        self.lease: SimpleNamespace | None = None
        self.version = 0

    def _stored(self, body: dict) -> SimpleNamespace:
        self.version += 1
        spec = body["spec"]
        self.lease = SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(self.version)),
            spec=SimpleNamespace(
                holder_identity=spec.get("holderIdentity"),
                lease_duration_seconds=spec.get("leaseDurationSeconds"),
                acquire_time=spec.get("acquireTime"),
                renew_time=spec.get("renewTime"),
                lease_transitions=spec.get("leaseTransitions"),
            ),
        )
        return self.lease

    def read_namespaced_lease(self, name: str, namespace: str) -> SimpleNamespace:
        if self.lease is None:
            raise ApiException(status=404)
        return self.lease

    def create_namespaced_lease(self, namespace: str, body: dict) -> SimpleNamespace:
        if self.lease is not None:
            raise ApiException(status=409)
        return self._stored(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict) -> SimpleNamespace:
        if body["metadata"].get("resourceVersion") != self.lease.metadata.resource_version:
            raise ApiException(status=409)
        return self._stored(body)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replica(server: LeaseServer, clock: Clock, name: str, *, wall_offset_s: float = 0) -> LeaseElector:
    """A replica whose wall clock is `wall_offset_s` away from the others' (its monotonic clock is its own)."""
    wall = lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=clock.now + wall_offset_s)  # noqa: E731
    return LeaseElector(server, "mlops-system", "mlops-operator-leader", name, duration=15, clock=clock, wall=wall)


def test_one_replica_leads_and_the_other_stands_by_while_it_renews() -> None:
    server, clock = LeaseServer(), Clock()
    a, b = replica(server, clock, "a"), replica(server, clock, "b")
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    for _ in range(30):  # a minute of renewals every 4 s, a standby looking every 2 s
        clock.now += 2
        assert not b.try_acquire_or_renew(), "a standby led while the leader renewed"
        clock.now += 2
        assert a.try_acquire_or_renew()
    assert server.lease.spec.holder_identity == "a" and server.lease.spec.lease_transitions == 0


def test_a_standby_takes_over_once_the_leader_stopped_renewing_for_the_leases_duration() -> None:
    server, clock = LeaseServer(), Clock()
    a, b = replica(server, clock, "a"), replica(server, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()  # b sees the Lease as it is now
    clock.now += 14
    assert not b.try_acquire_or_renew(), "taken over before the Lease ran out"
    clock.now += 2
    assert b.try_acquire_or_renew()
    assert server.lease.spec.holder_identity == "b" and server.lease.spec.lease_transitions == 1
    assert not a.try_acquire_or_renew(), "the old leader still thinks it leads"


def test_clocks_that_disagree_never_make_two_leaders() -> None:
    """The leader's wall clock an hour behind (its renewTime looks long expired) or ahead: what counts is
    whether the Lease changed, as each standby sees it on its own clock."""
    for offset in (-3600, 3600):
        server, clock = LeaseServer(), Clock()
        a, b = replica(server, clock, "a", wall_offset_s=offset), replica(server, clock, "b")
        assert a.try_acquire_or_renew()
        for _ in range(20):
            clock.now += 4
            assert not b.try_acquire_or_renew(), f"two leaders with the leader's clock {offset:+} s away"
            assert a.try_acquire_or_renew()


def test_two_standbys_taking_over_at_once_make_one_leader() -> None:
    server, clock = LeaseServer(), Clock()
    a, b, c = replica(server, clock, "a"), replica(server, clock, "b"), replica(server, clock, "c")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    c.try_acquire_or_renew()
    clock.now += 16
    stale = server.lease
    original = server.read_namespaced_lease
    server.read_namespaced_lease = lambda name, namespace: stale  # both read the same version before writing
    assert [b.try_acquire_or_renew(), c.try_acquire_or_renew()] == [True, False]
    server.read_namespaced_lease = original
    assert server.lease.spec.holder_identity == "b"


def test_a_released_lease_is_taken_at_the_next_look() -> None:
    server, clock = LeaseServer(), Clock()
    a, b = replica(server, clock, "a"), replica(server, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    a.release()
    clock.now += 2
    assert b.try_acquire_or_renew(), "a graceful stop made the standby wait out the Lease"
