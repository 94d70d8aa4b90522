
provider "aws" {
  region = var.region
}

# Debian's own AMIs (the Debian cloud team's AWS account); they run cloud-init.
data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"]
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

# The only inbound rule: the agent's port from sys-remote. No SSH. Outbound stays open: the VM
# downloads the agent package and Debian's updates.
resource "aws_security_group" "agent" {
  name        = "${local.hostname}-qubes-air"
  description = "qubes-air agent ${local.name}: only sys-remote to the agent port"
  ingress {
    description = "sys-remote to the qubes-air agent"
    from_port   = local.agent_port
    to_port     = local.agent_port
    protocol    = "tcp"
    cidr_blocks = [var.sys_remote_cidr]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_instance" "agent" {
  ami                         = data.aws_ami.debian.id
  instance_type               = var.instance_type
  associate_public_ip_address = true
  user_data                   = local.user_data
  user_data_replace_on_change = true
  vpc_security_group_ids      = [aws_security_group.agent.id]
  # IMDSv2 only: the metadata service (which serves the user-data) answers only with a session token.
  metadata_options {
    http_tokens = "required"
  }
  tags = {
    Name = local.hostname
  }
}

locals {
  address = aws_instance.agent.public_ip
}
