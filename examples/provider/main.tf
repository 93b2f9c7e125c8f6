# A plain Terraform use of the tsegossip provider: move one client group from
# plaintext to accept-encrypted, with gates before and after the step.
#
#   export TF_CLI_CONFIG_FILE=<project>/.terraformrc   # written by tools/install-provider
#   export TSEGOSSIP_KEY=$(tsegossip keygen)            # the key never enters config or state
#   terraform init && terraform apply -var-file=lab.tfvars.json
#
# tests/provider/test_terraform_e2e.py runs this against a lab cluster.

terraform {
  required_providers {
    tsegossip = {
      source  = "registry.terraform.io/tsegossip/tsegossip"
      version = "0.1.0"
    }
  }
}

provider "tsegossip" {}

variable "rollout" {
  type    = string
  default = "lab"
}
variable "http_addr" {
  description = "Consul HTTP API of a server (members, keyring)."
  type        = string
}
variable "servers" {
  description = "Server node name -> HTTP API address."
  type        = map(string)
}
variable "clients" {
  description = "Client node name -> HTTP API address (the group being moved)."
  type        = map(string)
}
variable "client_group" {
  type    = string
  default = "web"
}
variable "config_path" {
  description = "Where each node's gossip fragment goes; {node} and {http_addr} are filled in."
  type        = string
}
variable "restart_command" {
  description = "Restarts one node; {node}, {config_path}, {http_addr} are filled in (shell-quoted)."
  type        = string
}
variable "key_fingerprint" {
  description = "sha256 fingerprint of the key in $TSEGOSSIP_KEY (tsegossip keygen prints it)."
  type        = string
}
variable "server_phase" {
  description = "The phase the servers are already in (the smooth strategy moves them first)."
  type        = string
  default     = "accept-encrypted"
}
variable "client_phase" {
  type    = string
  default = "accept-encrypted"
}
variable "client_from_phase" {
  type    = string
  default = "plaintext"
}

# The servers moved in the previous stack; applying this only confirms it live (nothing restarts).
resource "tsegossip_server_params" "servers" {
  rollout         = var.rollout
  stack           = "01-${var.client_group}-accept"
  role            = "servers"
  server_type     = "self-managed"
  phase           = var.server_phase
  from_phase      = "plaintext"
  key_env         = "TSEGOSSIP_KEY"
  key_fingerprint = var.key_fingerprint
  http_addr       = var.http_addr
  nodes           = var.servers
  config_path     = var.config_path
  restart_command = var.restart_command
  timeout_seconds = 30
  poll_seconds    = 0.2
}

resource "tsegossip_phase_gate" "before" {
  rollout         = var.rollout
  stack           = "01-${var.client_group}-accept"
  when            = "before"
  http_addr       = var.http_addr
  expected        = merge({ for n, _ in var.servers : n => var.server_phase }, { for n, _ in var.clients : n => var.client_from_phase })
  addresses       = merge(var.servers, var.clients)
  key_env         = "TSEGOSSIP_KEY"
  key_fingerprint = var.key_fingerprint
  timeout_seconds = 20
  depends_on      = [tsegossip_server_params.servers]
}

resource "tsegossip_client_config" "group" {
  rollout         = var.rollout
  stack           = "01-${var.client_group}-accept"
  previous_stack  = "00-servers-accept"
  role            = var.client_group
  phase           = var.client_phase
  from_phase      = var.client_from_phase
  key_env         = "TSEGOSSIP_KEY"
  key_fingerprint = var.key_fingerprint
  http_addr       = var.http_addr
  nodes           = var.clients
  config_path     = var.config_path
  restart_command = var.restart_command
  batch_size      = 1
  timeout_seconds = 30
  poll_seconds    = 0.2
  depends_on      = [tsegossip_phase_gate.before]
}

resource "tsegossip_phase_gate" "after" {
  rollout         = var.rollout
  stack           = "01-${var.client_group}-accept"
  when            = "after"
  http_addr       = var.http_addr
  expected        = merge({ for n, _ in var.servers : n => var.server_phase }, { for n, _ in var.clients : n => var.client_phase })
  addresses       = merge(var.servers, var.clients)
  key_env         = "TSEGOSSIP_KEY"
  key_fingerprint = var.key_fingerprint
  timeout_seconds = 20
  depends_on      = [tsegossip_client_config.group]
}

output "observed" {
  value = tsegossip_client_config.group.observed
}
output "verdict" {
  value = tsegossip_phase_gate.after.verdict
}
