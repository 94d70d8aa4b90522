
provider "google" {
  project = var.project
  region  = var.region
  zone    = var.zone
}

# A network of its own: the project's "default" network admits SSH, RDP and ICMP from anywhere.
# A new network admits nothing inbound but what a firewall rule below allows.
resource "google_compute_network" "agent" {
  name                    = "${local.hostname}-qubes-air"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "agent" {
  name          = "${local.hostname}-qubes-air"
  network       = google_compute_network.agent.id
  region        = var.region
  ip_cidr_range = var.subnet_cidr
}

# The only inbound rule: the agent's port from sys-remote. No SSH.
resource "google_compute_firewall" "agent" {
  name          = "${local.hostname}-qubes-air-agent"
  network       = google_compute_network.agent.id
  direction     = "INGRESS"
  source_ranges = [var.sys_remote_cidr]
  target_tags   = ["qubes-air-agent"]
  allow {
    protocol = "tcp"
    ports    = [tostring(local.agent_port)]
  }
}

resource "google_compute_instance" "agent" {
  name         = local.hostname
  machine_type = var.machine_type
  zone         = var.zone
  tags         = ["qubes-air-agent"]
  # Ubuntu's images run cloud-init from the "user-data" metadata key (Debian's images for
  # Google Cloud do not carry cloud-init).
  boot_disk {
    initialize_params {
      image = "ubuntu-os-cloud/ubuntu-2404-lts-amd64"
    }
  }
  network_interface {
    subnetwork = google_compute_subnetwork.agent.id
    access_config {}
  }
  metadata = {
    user-data              = local.user_data
    block-project-ssh-keys = "true"
  }
}

locals {
  address = google_compute_instance.agent.network_interface[0].access_config[0].nat_ip
}
