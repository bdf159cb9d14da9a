# Read by infra/inventory.py (Ansible inventory) and infra/gpu.py (Pulumi config for the GPU node).

output "control_public_ip" {
  description = "Floating IP of the control node: ssh, the Kubernetes API and the public endpoint."
  value       = openstack_networking_floatingip_v2.control.address
}

output "node_names" {
  description = "Names of the standing nodes, control node first."
  value       = openstack_compute_instance_v2.node[*].name
}

output "node_private_ips" {
  description = "Fixed IPs of the standing nodes on the cluster subnet, in node_names order."
  value       = [for p in openstack_networking_port_v2.node : p.all_fixed_ips[0]]
}

output "ssh_user" {
  description = "Login user of the node image."
  value       = var.ssh_user
}

output "network_id" {
  description = "Cluster network, which the leased GPU node joins."
  value       = openstack_networking_network_v2.cluster.id
}

output "subnet_id" {
  description = "Cluster subnet, which the leased GPU node joins."
  value       = openstack_networking_subnet_v2.cluster.id
}

output "secgroup_id" {
  description = "Cluster security group, applied to the leased GPU node's port as well."
  value       = openstack_networking_secgroup_v2.cluster.id
}

output "network_cidr" {
  description = "CIDR of the cluster subnet; the host firewalls trust it for k3s traffic."
  value       = openstack_networking_subnet_v2.cluster.cidr
}

output "admin_cidrs" {
  description = "The ssh / Kubernetes API allowlist; the host firewalls admit it to the API as well."
  value       = var.admin_cidrs
}
