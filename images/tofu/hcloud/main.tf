
# The API token comes from HCLOUD_TOKEN.
provider "hcloud" {}

# The only inbound rule: the agent's port from sys-remote. A Hetzner firewall drops every
# inbound packet no rule admits, so no SSH. Outbound is not filtered.
resource "hcloud_firewall" "agent" {
  name = "${local.hostname}-qubes-air"
  rule {
    description = "sys-remote to the qubes-air agent"
    direction   = "in"
    protocol    = "tcp"
    port        = tostring(local.agent_port)
    source_ips  = [var.sys_remote_cidr]
  }
}

resource "hcloud_server" "agent" {
  name         = local.hostname
  image        = "debian-12"
  server_type  = var.server_type
  location     = var.location
  user_data    = local.user_data
  firewall_ids = [hcloud_firewall.agent.id]
  public_net {
    ipv4_enabled = true
    ipv6_enabled = false
  }
}

locals {
  address = hcloud_server.agent.ipv4_address
}
