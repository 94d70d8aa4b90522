# The qubes-air agent "{{name}}" as a {{title}} VM (written by qubes-air image cloud).
# Its cloud-init is ../../user-data, read as it is: the file the command wrote, never a copy.
# That file holds the one-time pairing token, and so does this module's state: keep both private
# until the VM is paired (after that the token is spent).

terraform {
  required_version = ">= 1.6.0"
  required_providers {
    {{provider}} = {
      source  = "{{provider_source}}"
      version = "{{provider_version}}"
    }
  }
}

locals {
  name       = "{{name}}"
  hostname   = "{{hostname}}"
  agent_port = {{port}}
  user_data  = file("${path.module}/../../user-data")
}
