"""The provider's resource schemas as plain data: the one definition both the provider
(which serves them over the plugin protocol) and the CDKTF bindings (which emit them)
are built from. No tf or cdktf import here, so both sides can use it.

Per-node data travels as ONE attribute per resource holding a map keyed by node name;
the CDKTF side emits it as a single `jsondecode("...")` expression so that 10,000 nodes
cross the jsii boundary as one string, not 10,000 values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PROVIDER_NAME = "tsegossip"
PROVIDER_SOURCE = "registry.terraform.io/tsegossip/tsegossip"
PROVIDER_VERSION = "0.1.0"


class Kind(enum.Enum):
    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    MAP_STRING = "map(string)"


@dataclass(frozen=True)
class Attribute:
    name: str
    kind: Kind
    description: str
    required: bool = False
    optional: bool = False
    computed: bool = False
    sensitive: bool = False
    requires_replace: bool = False


def _a(name, kind, description, **kw) -> Attribute:
    return Attribute(name, kind, description, **kw)


_COMMON = (
    _a("id", Kind.STRING, "Stable id: <rollout>/<stack>/<role>.", computed=True),
    _a("rollout", Kind.STRING, "The rollout spec's name.", required=True, requires_replace=True),
    _a("stack", Kind.STRING, "The stack (plan step) this resource belongs to.", required=True, requires_replace=True),
    _a("previous_stack", Kind.STRING,
       "The stack to deploy before this one; named in the error when the cluster is not ready for this step.",
       optional=True),
    _a("role", Kind.STRING, "`servers` or the client group's name.", required=True, requires_replace=True),
    _a("phase", Kind.STRING,
       "The phase these agents are in after the step: plaintext, accept-encrypted, send-encrypted or enforced. "
       "Read reports the phase observed live (`mixed` when nodes disagree), so a plan shows drift.",
       required=True),
    _a("from_phase", Kind.STRING, "The phase the plan expects these agents in before the step.", required=True),
    _a("allow_jump", Kind.BOOL,
       "Allow skipping a phase: the direct strategy's servers step, or a repair of stragglers (each node goes "
       "straight to its role's phase). Default: false.", optional=True),
    _a("key_env", Kind.STRING,
       "Environment variable holding the gossip key at apply time. The key never enters configuration or state.",
       required=True),
    _a("key_fingerprint", Kind.STRING,
       "sha256 fingerprint (12 hex digits) of the key the plan was made with; apply refuses a different key.",
       required=True),
    _a("http_addr", Kind.STRING, "Consul HTTP API used to observe the cluster (members, keyring).", required=True),
    _a("token_env", Kind.STRING, "Environment variable with the Consul ACL token. Default: CONSUL_HTTP_TOKEN.",
       optional=True),
    _a("cacert_env", Kind.STRING, "Environment variable with the CA file path. Default: CONSUL_CACERT.", optional=True),
    _a("client_cert_env", Kind.STRING, "Environment variable with the client cert path. Default: CONSUL_CLIENT_CERT.",
       optional=True),
    _a("client_key_env", Kind.STRING, "Environment variable with the client key path. Default: CONSUL_CLIENT_KEY.",
       optional=True),
    _a("timeout_seconds", Kind.NUMBER, "How long to wait for a batch (or TSE) to come back. Default: the rollout schema's timeouts.batch_seconds (tse_seconds for TSE servers).",
       optional=True),
    _a("poll_seconds", Kind.NUMBER, "Interval between live checks. Default: the rollout schema's timeouts.poll_seconds.", optional=True),
)

_NODES = (
    _a("nodes", Kind.MAP_STRING, "Node name → that agent's Consul HTTP API address.", optional=True),
    _a("config_path", Kind.STRING,
       "Where each node's gossip fragment is written; template with {node}, {http_addr}.", optional=True),
    _a("restart_command", Kind.STRING,
       "Shell command restarting one node; template with {node}, {config_path}, {http_addr}.", optional=True),
    _a("delivery", Kind.STRING,
       "How each fragment reaches its node's host: the spec's delivery block as canonical JSON "
       "(schemas/rollout.schema.json $defs/delivery). Unset: local, on the machine running Terraform.",
       optional=True),
    _a("down_nodes", Kind.STRING,
       "`refuse` (default): a node that is down when the step starts stops it before any restart; `skip`: the "
       "step goes on without it and records it in `stragglers`.", optional=True),
    _a("observed", Kind.MAP_STRING, "Node name → phase observed live at the last read or apply.", computed=True),
    _a("stragglers", Kind.MAP_STRING,
       "Node name → why it was not moved (down when the step ran, down_nodes = skip).", computed=True),
    _a("rewrite", Kind.BOOL,
       "A key rotation's configs stage: deliver every node's fragment again (key_env now names the new key) and "
       "restart nothing: the keyring already holds and uses the key, the fragment is for the agent's next start "
       "without its keyring file. phase and from_phase are the phase every agent runs. Default: false.",
       optional=True),
)

SERVER_PARAMS = (
    *_COMMON,
    _a("server_type", Kind.STRING, "`tse` or `self-managed`.", required=True, requires_replace=True),
    _a("instance_id", Kind.STRING, "TSE instance id (tse only).", optional=True),
    _a("region", Kind.STRING, "Tencent Cloud region (tse only).", optional=True),
    *_NODES,
)

CLIENT_CONFIG = (
    *_COMMON,
    _a("batch_size", Kind.NUMBER, "Nodes restarted together. Default: the rollout schema's client_groups[].batch_size.", optional=True),
    _a("joining", Kind.BOOL,
       "These agents have not joined yet: write the config and start them; do not require them alive before.",
       optional=True),
    *_NODES,
)

PHASE_GATE = (
    _a("id", Kind.STRING, "Stable id: <rollout>/<stack>/<when>.", computed=True),
    _a("rollout", Kind.STRING, "The rollout spec's name.", required=True, requires_replace=True),
    _a("stack", Kind.STRING, "The stack this gate guards.", required=True, requires_replace=True),
    _a("when", Kind.STRING, "`before` (checked before any restart) or `after` (once the step is done).",
       required=True, requires_replace=True),
    _a("previous_stack", Kind.STRING, "The stack to deploy first when a `before` gate fails.", optional=True),
    _a("http_addr", Kind.STRING, "Consul HTTP API used to list members and the keyring.", required=True),
    _a("expected", Kind.MAP_STRING,
       "Node name → phase it must be in (`not-joined` for nodes that need not be members yet).", required=True),
    _a("addresses", Kind.MAP_STRING, "Node name → that agent's HTTP API address (to read its own settings).",
       optional=True),
    _a("present_phases", Kind.STRING,
       "Before-gate: the phases the roles are in before the step, comma-separated. With coexisting_phases, every "
       "alive member not in `expected` is accounted for: refused when the step would cut it off.", optional=True),
    _a("coexisting_phases", Kind.STRING,
       "Before-gate: the phases that coexist during the step (the plan's proof), comma-separated.", optional=True),
    _a("unmanaged", Kind.MAP_STRING,
       "Before-gate: members handled elsewhere → the phase they run, or `observe` (read from their own API at "
       "`addresses`). The step is refused when it would cut one off.", optional=True),
    _a("may_be_down", Kind.MAP_STRING,
       "Node name → its role, for the nodes of roles with down_nodes = skip: such a node may be down (it is "
       "noted, not a mismatch).", optional=True),
    _a("repairing", Kind.MAP_STRING,
       "A repair's before-gate: straggler → the phase its own API must show now (read at `addresses`). A "
       "straggler need not be an alive member: it is what the repair moves.", optional=True),
    _a("servers_unlisted", Kind.BOOL,
       "The servers are TSE-managed and not listed by name: a member tagged as a server is theirs.", optional=True),
    _a("keyring_proven_by", Kind.STRING,
       "A rotation's keyring stage: the resource of the same stack that lists the keyring before its call and "
       "proves it after (its conditions include the key checked here), so the gate does not list it again.",
       optional=True),
    _a("key_env", Kind.STRING, "Environment variable holding the gossip key, to check the keyring.", required=True),
    _a("key_fingerprint", Kind.STRING, "sha256 fingerprint of the expected key.", required=True),
    _a("token_env", Kind.STRING, "Environment variable with the Consul ACL token.", optional=True),
    _a("cacert_env", Kind.STRING, "Environment variable with the CA file path.", optional=True),
    _a("client_cert_env", Kind.STRING, "Environment variable with the client cert path.", optional=True),
    _a("client_key_env", Kind.STRING, "Environment variable with the client key path.", optional=True),
    _a("timeout_seconds", Kind.NUMBER, "How long to wait for the cluster to settle before failing. Default: 60.",
       optional=True),
    _a("verdict", Kind.STRING, "What the last check found.", computed=True),
)

KEYRING = (
    _a("id", Kind.STRING, "Stable id: <rollout>/<stack>/keyring.", computed=True),
    _a("rollout", Kind.STRING, "The rollout spec's name.", required=True, requires_replace=True),
    _a("stack", Kind.STRING, "The stack (rotation stage) this keyring change belongs to.", required=True,
       requires_replace=True),
    _a("previous_stack", Kind.STRING, "The stage to deploy first when the keyring is not where this one starts.",
       optional=True),
    _a("operation", Kind.STRING,
       "`install` (POST /v1/operator/keyring), `use` (PUT: make it every member's primary) or `remove` (DELETE).",
       required=True, requires_replace=True),
    _a("key_env", Kind.STRING,
       "Environment variable holding the key the call names, at apply time. The key never enters configuration "
       "or state.", required=True),
    _a("key_fingerprint", Kind.STRING,
       "sha256 fingerprint (12 hex digits) of that key, as planned; apply refuses another key. A new fingerprint "
       "is a new rotation: the resource is replaced, never read as already done.", required=True,
       requires_replace=True),
    _a("held_before", Kind.STRING,
       "Comma-separated fingerprints every member must hold before the call (Keys[k] == NumNodes).", optional=True),
    _a("primary_before", Kind.STRING, "The fingerprint every member must use as primary before the call.",
       optional=True),
    _a("held_after", Kind.STRING, "Comma-separated fingerprints every member holds once the stage is done.",
       optional=True),
    _a("primary_after", Kind.STRING, "The fingerprint every member uses as primary once the stage is done.",
       optional=True),
    _a("absent_after", Kind.STRING, "Comma-separated fingerprints no member holds once the stage is done.",
       optional=True),
    _a("http_addr", Kind.STRING, "The Consul HTTP API the change is sent to and the keyring is listed through "
       "(that agent fans it out over gossip).", required=True),
    _a("members", Kind.MAP_STRING,
       "Node name → HTTP API address of every listed node: each must be an alive member before the call (a "
       "member down during a key change comes back with the old keyring only).", required=True),
    _a("may_be_down", Kind.MAP_STRING,
       "Node name → its role, for the nodes of roles with down_nodes = skip: such a node may be down when the "
       "call is made; it is recorded in `stragglers` (`tsegossip repair SPEC --keyring` once it is back).",
       optional=True),
    _a("keyring_files", Kind.MAP_STRING,
       "Role → JSON {\"delivery\": the role's delivery block, \"files\": node → <data_dir>/serf/local.keyring} "
       "for the roles whose spec gives data_dir: read where each agent runs (local: the runner; ssh: its host, "
       "where only each key's sha256 is computed) when a refusal counts members short, to name them.",
       optional=True),
    _a("await_members", Kind.STRING,
       "Comma-separated nodes that must be alive members once the change is done (a keyring rejoin: the "
       "stragglers read the cluster again); waited for up to timeout_seconds.", optional=True),
    _a("stragglers", Kind.MAP_STRING,
       "Node name → why the change did not reach it (down when the stage ran, down_nodes = skip).", computed=True),
    _a("token_env", Kind.STRING, "Environment variable with the Consul ACL token (keyring = \"write\").",
       optional=True),
    _a("cacert_env", Kind.STRING, "Environment variable with the CA file path.", optional=True),
    _a("client_cert_env", Kind.STRING, "Environment variable with the client cert path.", optional=True),
    _a("client_key_env", Kind.STRING, "Environment variable with the client key path.", optional=True),
    _a("timeout_seconds", Kind.NUMBER, "How long to wait for every member to show the change. Default: the rollout "
       "schema's timeouts.batch_seconds.", optional=True),
    _a("poll_seconds", Kind.NUMBER, "Interval between keyring listings. Default: timeouts.poll_seconds.",
       optional=True),
    _a("verdict", Kind.STRING, "What the stage found and did, keys by fingerprint.", computed=True),
)

RESOURCES: dict[str, tuple[Attribute, ...]] = {
    "tsegossip_server_params": SERVER_PARAMS,
    "tsegossip_client_config": CLIENT_CONFIG,
    "tsegossip_phase_gate": PHASE_GATE,
    "tsegossip_keyring": KEYRING,
}
