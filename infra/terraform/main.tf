# The standing cluster: everything here lives until `aidetect infra destroy`. Leased GPU capacity is
# Pulumi's (infra/pulumi); it joins this network through the ids in outputs.tf and owns nothing here.

locals {
  # One rule per (port, source) pair, keyed so that adding a CIDR never replaces the other rules.
  admin_rules = {
    for pair in setproduct([22, 6443], var.admin_cidrs) : "${pair[0]}-${pair[1]}" => {
      port = pair[0]
      cidr = pair[1]
    }
  }
  web_rules = {
    for pair in setproduct([80, 443], var.web_cidrs) : "${pair[0]}-${pair[1]}" => {
      port = pair[0]
      cidr = pair[1]
    }
  }
  node_names = [for i in range(var.node_count) : "${var.name_prefix}-node-${i + 1}"]
}

data "openstack_networking_network_v2" "external" {
  name     = var.external_network
  external = true
}

resource "openstack_networking_network_v2" "cluster" {
  name           = "${var.name_prefix}-net"
  admin_state_up = true
}

resource "openstack_networking_subnet_v2" "cluster" {
  name            = "${var.name_prefix}-subnet"
  network_id      = openstack_networking_network_v2.cluster.id
  cidr            = var.network_cidr
  ip_version      = 4
  dns_nameservers = var.dns_nameservers
}

resource "openstack_networking_router_v2" "cluster" {
  name                = "${var.name_prefix}-router"
  admin_state_up      = true
  external_network_id = data.openstack_networking_network_v2.external.id
}

resource "openstack_networking_router_interface_v2" "cluster" {
  router_id = openstack_networking_router_v2.cluster.id
  subnet_id = openstack_networking_subnet_v2.cluster.id
}

resource "openstack_networking_secgroup_v2" "cluster" {
  name        = "${var.name_prefix}-cluster"
  description = "aidetect cluster: admin ports from the allowlist, web from web_cidrs, all within the subnet"
  # The default group rules would allow all egress and intra-group traffic implicitly; state them below.
  delete_default_rules = true
}

resource "openstack_networking_secgroup_rule_v2" "admin" {
  for_each = local.admin_rules

  description       = "ssh / Kubernetes API from the admin allowlist"
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.cidr
  security_group_id = openstack_networking_secgroup_v2.cluster.id
}

resource "openstack_networking_secgroup_rule_v2" "web" {
  for_each = local.web_rules

  description       = "public endpoint (HTTP/HTTPS ingress)"
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.cidr
  security_group_id = openstack_networking_secgroup_v2.cluster.id
}

resource "openstack_networking_secgroup_rule_v2" "intra_cluster" {
  description       = "k3s traffic between nodes (API, kubelet, flannel VXLAN) stays within the subnet"
  direction         = "ingress"
  ethertype         = "IPv4"
  remote_ip_prefix  = var.network_cidr
  security_group_id = openstack_networking_secgroup_v2.cluster.id
}

resource "openstack_networking_secgroup_rule_v2" "egress" {
  description       = "nodes pull packages and images from the internet"
  direction         = "egress"
  ethertype         = "IPv4"
  remote_ip_prefix  = "0.0.0.0/0"
  security_group_id = openstack_networking_secgroup_v2.cluster.id
}

# Ports are explicit so the security group and the floating IP attach to a known port.
resource "openstack_networking_port_v2" "node" {
  count = var.node_count

  name               = "${local.node_names[count.index]}-port"
  network_id         = openstack_networking_network_v2.cluster.id
  admin_state_up     = true
  security_group_ids = [openstack_networking_secgroup_v2.cluster.id]

  fixed_ip {
    subnet_id = openstack_networking_subnet_v2.cluster.id
  }
}

resource "openstack_compute_instance_v2" "node" {
  count = var.node_count

  name        = local.node_names[count.index]
  flavor_name = var.node_flavor
  image_name  = var.node_image
  key_pair    = var.key_pair

  metadata = {
    role       = count.index == 0 ? "control" : "worker"
    managed_by = "terraform"
    project    = var.project
  }

  network {
    port = openstack_networking_port_v2.node[count.index].id
  }
}

# Only the control node is reachable from outside; workers are reached through it (ProxyJump).
resource "openstack_networking_floatingip_v2" "control" {
  pool        = var.external_network
  description = "${var.name_prefix} control node and public endpoint"
}

resource "openstack_networking_floatingip_associate_v2" "control" {
  floating_ip = openstack_networking_floatingip_v2.control.address
  port_id     = openstack_networking_port_v2.node[0].id

  # A floating IP needs the subnet routed to the external network first.
  depends_on = [openstack_networking_router_interface_v2.cluster]
}
