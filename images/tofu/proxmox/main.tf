
# The endpoint and credentials come from PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN.
provider "proxmox" {}

# Debian 12's generic cloud image (it runs cloud-init from Proxmox's cloud-init drive).
resource "proxmox_virtual_environment_download_file" "debian" {
  node_name    = var.node
  datastore_id = var.image_datastore
  content_type = "iso"
  url          = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"
  file_name    = "debian-12-genericcloud-amd64.img"
  overwrite    = false
}

# The user-data as a snippet (the datastore must allow the "snippets" content type).
resource "proxmox_virtual_environment_file" "user_data" {
  node_name    = var.node
  datastore_id = var.snippets_datastore
  content_type = "snippets"
  source_raw {
    data      = local.user_data
    file_name = "${local.hostname}-qubes-air-user-data.yaml"
  }
}

resource "proxmox_virtual_environment_vm" "agent" {
  name      = local.hostname
  node_name = var.node
  # No guest agent in the image: the address is the static one given, or read it from DHCP.
  agent {
    enabled = false
  }
  cpu {
    cores = 1
    type  = "x86-64-v2-AES"
  }
  memory {
    dedicated = var.memory_mib
  }
  disk {
    datastore_id = var.vm_datastore
    file_id      = proxmox_virtual_environment_download_file.debian.id
    interface    = "virtio0"
    size         = 8
  }
  initialization {
    datastore_id      = var.vm_datastore
    user_data_file_id = proxmox_virtual_environment_file.user_data.id
    ip_config {
      ipv4 {
        address = var.ipv4_address
        gateway = var.ipv4_gateway
      }
    }
  }
  network_device {
    bridge   = var.bridge
    firewall = true
  }
  operating_system {
    type = "l26"
  }
  serial_device {}
}

# The VM's own firewall: inbound dropped but for the one rule below (and DHCP, when used).
resource "proxmox_virtual_environment_firewall_options" "agent" {
  node_name     = var.node
  vm_id         = proxmox_virtual_environment_vm.agent.vm_id
  enabled       = true
  input_policy  = "DROP"
  output_policy = "ACCEPT"
  dhcp          = var.ipv4_address == "dhcp"
}

# The only inbound rule: the agent's port from sys-remote. No SSH.
resource "proxmox_virtual_environment_firewall_rules" "agent" {
  node_name = var.node
  vm_id     = proxmox_virtual_environment_vm.agent.vm_id
  rule {
    type    = "in"
    action  = "ACCEPT"
    proto   = "tcp"
    dport   = tostring(local.agent_port)
    source  = var.sys_remote_cidr
    comment = "sys-remote to the qubes-air agent"
  }
}

locals {
  address = var.ipv4_address == "dhcp" ? "VM-ADDRESS" : split("/", var.ipv4_address)[0]
}
