"""The Blazar GPU lease as a Pulumi dynamic resource (neither Terraform nor pulumi-openstack has one).

    lease = BlazarLease("gpu-lease", LeaseArgs(cloud="chameleon", name="aidetect-gpu", hours=4))
    lease.reservation_id   # scheduler hint `reservation` of the node booted on it
    lease.flavor_id        # set for flavor:instance leases; empty for reserved hosts (boot flavor_name)

create() asks Blazar for the lease and waits until it is ACTIVE (deleting it again if it never gets
there, so a failed `gpu up` leaves nothing billed); delete() ends it, which also frees the host.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

from infra.pulumi import blazar

# Inputs whose change means a different lease; anything else (the wait) changes nothing in the cloud.
REPLACE_ON = ("cloud", "region", "name", "hours", "node_type", "resource_type", "flavor")


@dataclass
class LeaseArgs:
    cloud: str  # clouds.yaml entry; credentials stay out of the Pulumi state
    name: str
    hours: float
    region: str = ""  # OpenStack region (the Chameleon site); empty: clouds.yaml's
    node_type: str = "gpu_a100"
    resource_type: str = "physical:host"
    flavor: str = "baremetal"
    wait_timeout_s: float = 1800
    poll_s: float = 15


class LeaseProvider(ResourceProvider):
    def _session(self, props: dict[str, Any]):
        return blazar.session_for(props["cloud"], props.get("region") or None)

    def create(self, props: dict[str, Any]) -> CreateResult:
        session = self._session(props)
        body = blazar.lease_request(
            props["name"], float(props["hours"]), props["node_type"], props["resource_type"], props["flavor"]
        )
        lease = blazar.create_lease(session, body)
        try:
            lease = blazar.wait_active(session, lease["id"], float(props["wait_timeout_s"]), float(props["poll_s"]))
        except Exception:
            blazar.delete_lease(session, lease["id"])
            raise
        return CreateResult(lease["id"], {**props, **_outputs(lease, props["flavor"])})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        lease = blazar.get_lease(self._session(props), id_)
        if lease is None:  # ended and purged: refresh drops it from the state
            return ReadResult(None, {})
        return ReadResult(id_, {**props, **_outputs(lease, props["flavor"])})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_ON if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        blazar.delete_lease(self._session(props), id_)


def _outputs(lease: dict[str, Any], default_flavor: str) -> dict[str, Any]:
    reservations = lease.get("reservations") or []
    if not reservations:
        raise blazar.BlazarError(f"lease {lease.get('id')} has no reservation")
    reservation = reservations[0]
    flavor_id, flavor_name = blazar.reserved_flavor(reservation, default_flavor)
    return {
        "lease_id": lease["id"],
        "reservation_id": reservation["id"],
        "flavor_id": flavor_id,
        "flavor_name": flavor_name,
        "status": lease.get("status", ""),
        "end_date": lease.get("end_date", ""),
    }


class BlazarLease(Resource):
    lease_id: pulumi.Output[str]
    reservation_id: pulumi.Output[str]
    flavor_id: pulumi.Output[str]
    flavor_name: pulumi.Output[str]
    status: pulumi.Output[str]
    end_date: pulumi.Output[str]

    def __init__(self, name: str, args: LeaseArgs, opts: pulumi.ResourceOptions | None = None):
        computed = dict.fromkeys(("lease_id", "reservation_id", "flavor_id", "flavor_name", "status", "end_date"))
        super().__init__(LeaseProvider(), name, {**asdict(args), **computed}, opts)
