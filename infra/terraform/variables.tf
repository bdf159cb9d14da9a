# Values come from infra/site.yaml through the generated terraform.tfvars.json (`aidetect infra plan`).

variable "cloud" {
  description = "Entry in clouds.yaml that holds the Chameleon site's credentials (OS_CLOUD)."
  type        = string
}

variable "region" {
  description = "Chameleon site, which is the OpenStack region name (e.g. KVM@TACC)."
  type        = string
}

variable "project" {
  description = "Chameleon project (charge code) the credentials are scoped to; recorded on every node."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name, so several deployments can share one project."
  type        = string
  default     = "aidetect"
}

variable "key_pair" {
  description = "Name of an existing Nova key pair whose public key is installed on every node."
  type        = string
}

variable "network_cidr" {
  description = "IPv4 CIDR of the cluster subnet; intra-cluster traffic is allowed within it."
  type        = string
  default     = "192.168.50.0/24"

  validation {
    condition     = can(cidrhost(var.network_cidr, 0))
    error_message = "network_cidr must be an IPv4 CIDR such as 192.168.50.0/24."
  }
}

variable "dns_nameservers" {
  description = "DNS resolvers handed out by the subnet's DHCP."
  type        = list(string)
  default     = ["8.8.8.8", "8.8.4.4"]
}

variable "external_network" {
  description = "Name of the site's external network that routes to the internet and owns floating IPs."
  type        = string
  default     = "public"
}

variable "admin_cidrs" {
  description = "Allowlist of CIDRs that may reach ssh (22) and the Kubernetes API (6443)."
  type        = list(string)

  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must list at least one valid CIDR."
  }

  validation {
    condition     = !anytrue([for c in var.admin_cidrs : endswith(c, "/0")])
    error_message = "admin_cidrs must not open ssh and the Kubernetes API to the whole internet (/0)."
  }
}

variable "web_cidrs" {
  description = "CIDRs that may reach the public endpoint on HTTP (80) and HTTPS (443)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "node_count" {
  description = "Number of standing cluster nodes; the first is the k3s control node and holds the floating IP."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 1 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number of at least 1."
  }
}

variable "node_flavor" {
  description = "Nova flavor of the standing nodes."
  type        = string
  default     = "m1.medium"
}

variable "node_image" {
  description = "Glance image name of the standing nodes."
  type        = string
  default     = "CC-Ubuntu24.04"
}

variable "ssh_user" {
  description = "Login user of node_image; passed through to the Ansible inventory."
  type        = string
  default     = "cc"
}
