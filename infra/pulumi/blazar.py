"""The few Blazar (OpenStack reservation service) calls a GPU lease needs, over keystoneauth.

openstacksdk has no reservation module, so requests go to the `reservation` endpoint of the service
catalog through a keystoneauth adapter built from clouds.yaml:

    session = session_for("chameleon")
    lease = create_lease(session, lease_request("aidetect-gpu", hours=4, node_type="gpu_a100"))
    lease = wait_active(session, lease["id"], timeout_s=1800)
    reservation = lease["reservations"][0]
    delete_lease(session, lease["id"])

Request bodies and the choice of flavor are pure functions; the rest is thin HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

BLAZAR_DATE = "%Y-%m-%d %H:%M"
ACTIVE = "ACTIVE"
FAILED = {"ERROR", "TERMINATED", "DELETED"}


class BlazarError(RuntimeError):
    """The reservation service refused or failed a lease."""


def lease_request(
    name: str,
    hours: float,
    node_type: str = "gpu_a100",
    resource_type: str = "physical:host",
    flavor: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Body of POST /leases: one GPU host (or one instance of a GPU flavor) from now for `hours`."""
    if hours <= 0:
        raise ValueError("a lease must last a positive number of hours")
    now = now or datetime.now(UTC)
    end = now + timedelta(hours=hours)
    if resource_type == "physical:host":
        reservation: dict[str, Any] = {
            "resource_type": "physical:host",
            "min": 1,
            "max": 1,
            "hypervisor_properties": "",
            # Blazar takes the property filter as a JSON-encoded string, not a list.
            "resource_properties": json.dumps(["==", "$node_type", node_type]),
        }
    elif resource_type == "flavor:instance":
        if not flavor:
            raise ValueError("a flavor:instance lease needs the flavor to reserve")
        reservation = {"resource_type": "flavor:instance", "flavor_id": flavor, "amount": 1}
    else:
        raise ValueError(f"unsupported reservation type {resource_type!r}")
    return {
        "name": name,
        "start_date": "now",
        "end_date": end.strftime(BLAZAR_DATE),
        "reservations": [reservation],
        "events": [],
    }


def reserved_flavor(reservation: dict[str, Any], default_flavor: str) -> tuple[str, str]:
    """(flavor_id, flavor_name) to boot on the reservation.

    A flavor:instance reservation creates a flavor whose id is the reservation's id (its `flavor_id` is
    the flavor that was asked for, which unreserved users may not boot); reserved bare-metal hosts
    (physical:host) are booted with the site's ordinary bare-metal flavor.
    """
    if reservation.get("resource_type") == "flavor:instance":
        return reservation["id"], ""
    return "", default_flavor


def session_for(cloud: str, region: str | None = None):
    """A keystoneauth adapter on the reservation endpoint of a clouds.yaml entry's region.

    OS_CLIENT_CONFIG_FILE may point at the clouds.yaml; relative URLs ("/leases") are joined to the
    catalog's reservation endpoint.
    """
    import openstack.config  # imported here so the Pulumi program starts without it
    from keystoneauth1.adapter import Adapter

    cloud_region = openstack.config.OpenStackConfig().get_one(cloud=cloud, region_name=region)
    return Adapter(
        cloud_region.get_session(),
        service_type="reservation",
        interface="public",
        region_name=cloud_region.region_name or None,
    )


def _check(response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        raise BlazarError(f"{what} failed: HTTP {response.status_code} {response.text[:200]}")
    return response.json() if response.content else {}


def create_lease(session, body: dict[str, Any]) -> dict[str, Any]:
    response = session.post("/leases", json=body, raise_exc=False)
    return _check(response, f"creating lease {body.get('name')}")["lease"]


def get_lease(session, lease_id: str) -> dict[str, Any] | None:
    response = session.get(f"/leases/{lease_id}", raise_exc=False)
    if response.status_code == 404:
        return None
    return _check(response, f"reading lease {lease_id}")["lease"]


def delete_lease(session, lease_id: str) -> bool:
    """Deletes the lease; False when it was already gone (deleting twice is not an error)."""
    response = session.delete(f"/leases/{lease_id}", raise_exc=False)
    if response.status_code == 404:
        return False
    _check(response, f"deleting lease {lease_id}")
    return True


def wait_active(
    session,
    lease_id: str,
    timeout_s: float = 1800,
    poll_s: float = 15,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Polls until the lease is ACTIVE; raises on a failed lease or when timeout_s passes."""
    deadline = clock() + timeout_s
    while True:
        lease = get_lease(session, lease_id)
        if lease is None:
            raise BlazarError(f"lease {lease_id} disappeared while starting")
        status = lease.get("status", "")
        if status == ACTIVE:
            return lease
        if status in FAILED:
            raise BlazarError(f"lease {lease_id} is {status}: {lease.get('status_reason') or 'no reason given'}")
        if clock() >= deadline:
            raise BlazarError(f"lease {lease_id} still {status or 'pending'} after {timeout_s:.0f} s")
        sleep(poll_s)
