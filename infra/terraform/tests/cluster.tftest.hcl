# Plan-level checks of the standing cluster, run offline: `terraform test` with a mocked provider.
# Run through tests/infra/test_terraform.py, which installs the offline stand-in provider first.

mock_provider "openstack" {
  mock_data "openstack_networking_network_v2" {
    defaults = {
      id = "ext-net-0000"
    }
  }

  mock_resource "openstack_networking_port_v2" {
    defaults = {
      all_fixed_ips = ["192.168.50.10"]
    }
  }

  mock_resource "openstack_networking_floatingip_v2" {
    defaults = {
      address = "129.114.0.10"
    }
  }
}

variables {
  cloud       = "chameleon"
  region      = "KVM@TACC"
  project     = "CHI-000000"
  key_pair    = "aidetect"
  admin_cidrs = ["198.51.100.7/32", "203.0.113.0/24"]
}

run "three_medium_nodes" {
  command = apply

  assert {
    condition     = length(openstack_compute_instance_v2.node) == 3
    error_message = "the default cluster has three nodes"
  }

  assert {
    condition     = alltrue([for n in openstack_compute_instance_v2.node : n.flavor_name == "m1.medium"])
    error_message = "every standing node is an m1.medium"
  }

  assert {
    condition     = alltrue([for n in openstack_compute_instance_v2.node : n.image_name == "CC-Ubuntu24.04"])
    error_message = "every standing node boots the configured image"
  }

  assert {
    condition     = openstack_compute_instance_v2.node[0].metadata.role == "control"
    error_message = "the first node is the control node"
  }

  assert {
    condition     = openstack_networking_router_v2.cluster.external_network_id == "ext-net-0000"
    error_message = "the router routes to the external network"
  }

  assert {
    condition     = openstack_networking_subnet_v2.cluster.cidr == "192.168.50.0/24"
    error_message = "the subnet takes the configured CIDR"
  }
}

run "floating_ip_only_on_first_node" {
  command = apply

  assert {
    condition     = openstack_networking_floatingip_associate_v2.control.port_id == openstack_networking_port_v2.node[0].id
    error_message = "the floating IP is associated with the first node's port"
  }

  assert {
    condition     = !anytrue([for p in slice(openstack_networking_port_v2.node, 1, 3) : p.id == openstack_networking_floatingip_associate_v2.control.port_id])
    error_message = "no worker holds the floating IP"
  }

  assert {
    condition     = openstack_networking_floatingip_v2.control.pool == "public"
    error_message = "the floating IP comes from the external network"
  }

  assert {
    condition     = output.control_public_ip == "129.114.0.10"
    error_message = "the control node's public address is an output"
  }
}

run "admin_ports_only_from_allowlist" {
  command = apply

  # Every rule that lets 22 or 6443 in from outside the subnet must come from the allowlist.
  assert {
    condition = alltrue([
      for r in concat(
        values(openstack_networking_secgroup_rule_v2.admin),
        values(openstack_networking_secgroup_rule_v2.web),
        [openstack_networking_secgroup_rule_v2.intra_cluster],
      ) :
      contains(var.admin_cidrs, r.remote_ip_prefix) || r.remote_ip_prefix == var.network_cidr
      if r.direction == "ingress" && anytrue([
        for port in [22, 6443] :
        # No port range (null, or 0 once OpenStack fills it in) means every port.
        r.port_range_min == null || r.port_range_min == 0 || (r.port_range_min <= port && port <= r.port_range_max)
      ])
    ])
    error_message = "ssh or the Kubernetes API is reachable from outside the allowlist"
  }

  assert {
    condition = (
      sort([for r in openstack_networking_secgroup_rule_v2.admin : "${r.port_range_min}/${r.remote_ip_prefix}"])
      == sort(["22/198.51.100.7/32", "22/203.0.113.0/24", "6443/198.51.100.7/32", "6443/203.0.113.0/24"])
    )
    error_message = "ssh and 6443 are open to exactly each allowlisted CIDR"
  }

  assert {
    condition = (
      join(",", sort([for r in openstack_networking_secgroup_rule_v2.web : tostring(r.port_range_min)])) == "443,80"
      && alltrue([for r in openstack_networking_secgroup_rule_v2.web : r.remote_ip_prefix == "0.0.0.0/0"])
    )
    error_message = "HTTP and HTTPS are open for the public endpoint"
  }

  assert {
    condition     = openstack_networking_secgroup_rule_v2.intra_cluster.remote_ip_prefix == "192.168.50.0/24"
    error_message = "intra-cluster traffic is allowed from the subnet only"
  }

  assert {
    condition     = alltrue([for p in openstack_networking_port_v2.node : contains(p.security_group_ids, openstack_networking_secgroup_v2.cluster.id)])
    error_message = "every node port carries the cluster security group"
  }
}

run "node_count_is_configurable" {
  command = plan

  variables {
    node_count  = 5
    node_flavor = "m1.large"
  }

  assert {
    condition     = length(openstack_compute_instance_v2.node) == 5 && openstack_compute_instance_v2.node[4].flavor_name == "m1.large"
    error_message = "node_count and node_flavor drive the instances"
  }

  assert {
    condition     = openstack_compute_instance_v2.node[4].metadata.role == "worker"
    error_message = "nodes after the first are workers"
  }
}

run "world_open_admin_ports_are_rejected" {
  command = plan

  variables {
    admin_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.admin_cidrs]
}
