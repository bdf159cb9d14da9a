"""The Blazar lease provider's create/delete against a fake Keystone + Blazar on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from infra.pulumi import blazar
from infra.pulumi.lease import LeaseArgs, LeaseProvider


def props(**over) -> dict:
    args = LeaseArgs(cloud="fake", name="aidetect-gpu", hours=4, wait_timeout_s=5, poll_s=0.01)
    return {**args.__dict__, **over}


def test_create_waits_until_active_and_returns_the_reservation(fake_cloud):
    fake_cloud.state.polls_until_active = 3

    result = LeaseProvider().create(props())

    lease = fake_cloud.state.leases[result.id]
    assert lease["status"] == "ACTIVE"
    assert fake_cloud.state.polls[result.id] == 3  # it polled until ACTIVE, not once
    reservation = lease["reservations"][0]
    assert result.outs["reservation_id"] == reservation["id"]
    assert result.outs["lease_id"] == result.id
    assert (result.outs["flavor_id"], result.outs["flavor_name"]) == ("", "baremetal")
    # The token request went to Keystone, the lease request to the catalog's reservation endpoint.
    paths = [(m, p) for m, p, _ in fake_cloud.state.requests]
    assert paths[0] == ("POST", "/v3/auth/tokens")
    assert ("POST", "/reservation/v1/leases") in paths
    body = next(b for m, p, b in fake_cloud.state.requests if (m, p) == ("POST", "/reservation/v1/leases"))
    assert body["reservations"][0]["resource_type"] == "physical:host"
    assert json.loads(body["reservations"][0]["resource_properties"]) == ["==", "$node_type", "gpu_a100"]


def test_flavor_instance_lease_yields_the_reserved_flavor(fake_cloud):
    result = LeaseProvider().create(props(resource_type="flavor:instance", flavor="g1.h100.pci.1"))

    reservation = fake_cloud.state.leases[result.id]["reservations"][0]
    assert reservation["resource_type"] == "flavor:instance"
    assert reservation["flavor_id"] == "g1.h100.pci.1"  # what was asked for ...
    assert result.outs["flavor_id"] == reservation["id"]  # ... and the reserved flavor to boot
    assert result.outs["flavor_name"] == ""


def test_delete_ends_the_lease_and_tolerates_a_gone_lease(fake_cloud):
    provider = LeaseProvider()
    result = provider.create(props())

    provider.delete(result.id, result.outs)
    assert result.id not in fake_cloud.state.leases
    assert ("DELETE", f"/reservation/v1/leases/{result.id}", None) in fake_cloud.state.requests

    provider.delete(result.id, result.outs)  # already gone after the lease ended: not an error
    assert provider.read(result.id, result.outs).id is None


def test_a_lease_that_fails_to_start_is_deleted_and_reported(fake_cloud):
    fake_cloud.state.final_status = "ERROR"

    with pytest.raises(blazar.BlazarError, match="ERROR"):
        LeaseProvider().create(props())
    assert fake_cloud.state.leases == {}  # nothing is left reserved (and billed)


def test_a_lease_that_never_starts_times_out_and_is_deleted(fake_cloud):
    fake_cloud.state.polls_until_active = 10**6

    with pytest.raises(blazar.BlazarError, match="still PENDING"):
        LeaseProvider().create(props(wait_timeout_s=0.05))
    assert fake_cloud.state.leases == {}


def test_diff_replaces_the_lease_only_when_what_is_reserved_changes():
    provider = LeaseProvider()
    old = props()
    assert provider.diff("id", old, props(poll_s=5)).changes is False
    diff = provider.diff("id", old, props(hours=8))
    assert diff.changes and diff.replaces == ["hours"] and diff.delete_before_replace


def test_lease_request_covers_the_asked_hours_from_now():
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    body = blazar.lease_request("x", 4, node_type="gpu_v100", now=now)
    assert (body["start_date"], body["end_date"]) == ("now", "2026-11-25 14:00")
    assert json.loads(body["reservations"][0]["resource_properties"]) == ["==", "$node_type", "gpu_v100"]
    with pytest.raises(ValueError):
        blazar.lease_request("x", 0)
    with pytest.raises(ValueError, match="flavor"):
        blazar.lease_request("x", 4, resource_type="flavor:instance")
