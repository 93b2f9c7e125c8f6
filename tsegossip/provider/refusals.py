"""The checks that refuse a step before any agent is touched, and how a refusal travels.

Safety rules, in order, for a step moving agents from `from_phase` to `phase`:
1. the key in $key_env must be the one the plan was made with (fingerprints compared);
2. the step must not skip a phase, unless allow_jump says the split is accepted;
3. every agent must already be in from_phase or in phase (resume); joining agents may be absent;
4. once encryption is on, the keyring must hold our key on every node.

Each check records its diagnostic (summary, what to do, attribute path) and raises `Refused`;
the operation's entry point turns that into None for Terraform, so nothing raises out of the
provider.
"""

from __future__ import annotations

import functools
from typing import Callable, Mapping, NoReturn, ParamSpec, TypeVar

from tf.utils import Diagnostics

from ..agentconfig import KEYRING_WINS_LOG, stale_keyring_remedy
from ..delivery import Delivery, DeliveryError
from ..keys import UNKNOWN_FINGERPRINT, GossipKey, InvalidKey
from ..phases import Phase
from .live import group_labels, key_installed
from .state import GateState, NodesState, ServerParamsState
from .world import World

P = ParamSpec("P")
R = TypeVar("R")


class Refused(Exception):
    """Stop an operation; the diagnostic is already recorded."""


def refuse(diags: Diagnostics, summary: str, detail: str, path: list) -> NoReturn:
    diags.add_error(summary, detail, path=path)
    raise Refused


def none_when_refused(operation: Callable[P, R]) -> Callable[P, R | None]:
    """An operation's entry point: its result, or None once a check refused."""
    @functools.wraps(operation)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return operation(*args, **kwargs)
        except Refused:
            return None
    return run


def phase(value: object, name: str, diags: Diagnostics) -> Phase:
    try:
        return Phase.parse(value)
    except ValueError:
        refuse(diags, f"{name} {value!r} is not a phase", f"Allowed: {', '.join(Phase.names())}.", [name])


def require_rollout_settings(state: NodesState, diags: Diagnostics) -> None:
    """Nodes to move, where their fragment goes and how they restart."""
    if not state.nodes:
        refuse(diags, f"No nodes for {state.who}", "Set `nodes` (node name -> HTTP API address).", ["nodes"])
    for attr in ("config_path", "restart_command"):
        if not getattr(state, attr):
            refuse(diags, f"{attr} is required for {state.who}",
                   f"tsegossip writes each node's fragment to config_path and restarts it with "
                   f"restart_command; {attr} is not set.", [attr])


def delivery(state: NodesState, diags: Diagnostics) -> Delivery:
    """The role's delivery block, checked against the rollout schema's $defs/delivery."""
    try:
        return Delivery.from_json(state.delivery, "delivery")
    except DeliveryError as err:
        refuse(diags, f"delivery of {state.who} is not acceptable", f"{err}. Nothing was changed.", ["delivery"])


def require_tse_instance(state: ServerParamsState, diags: Diagnostics) -> None:
    for attr in ("instance_id", "region"):
        if not getattr(state, attr):
            refuse(diags, f"{attr} is required for TSE servers", f"Set {attr} (server_type = tse).", [attr])


def gossip_key(state: NodesState | GateState, world: World, diags: Diagnostics, needed: bool) -> GossipKey | None:
    """The key from $key_env, checked against key_fingerprint. None when not needed and not set."""
    env_name = state.key_env or ""
    want = state.key_fingerprint or ""
    if not (world.environ.get(env_name) or "").strip() and not needed:
        return None
    if want == UNKNOWN_FINGERPRINT:
        refuse(diags, "This configuration was synthesized without the gossip key",
               f"key_fingerprint is unknown: ${env_name} was not set when it was synthesized (a plan for review) "
               "and the spec pins no key_fingerprint. Synthesize it again with the key exported (a plain "
               "`cdktf deploy` does; `tsegossip deploy` too), or pin key_fingerprint in the spec; nothing was changed.",
               ["key_fingerprint"])
    try:
        key = GossipKey.from_env(env_name, dict(world.environ))
    except InvalidKey as err:
        refuse(diags, "The gossip key is not available", str(err), ["key_env"])
    if key.fingerprint != want:
        refuse(diags, "The gossip key does not match the plan",
               f"The key in ${env_name} has fingerprint {key.fingerprint}, but this configuration was planned with "
               f"key_fingerprint {want}. Export the key the plan was made with (or re-plan with this key); "
               "nothing was changed.",
               ["key_fingerprint"])
    return key


def no_skipped_phase(state: NodesState, diags: Diagnostics, source: Phase, target: Phase) -> None:
    if abs(target.rank - source.rank) > 1 and not state.allow_jump:
        refuse(diags, f"Moving {source} -> {target} skips a phase",
               f"Agents in {source} and {target} cannot gossip with each other while the step is half done. "
               "Go one phase at a time, or set allow_jump = true (direct strategy) to accept the split.",
               ["phase"])


def not_ready(diags: Diagnostics, state: NodesState, who: str, labels: Mapping[str, str], source: Phase,
              detail: str) -> NoReturn:
    """These agents are not where this stack starts from."""
    previous = f"deploy {state.previous_stack} first" if state.previous_stack else f"bring them to {source} first"
    refuse(diags, f"{who} are not ready for stack {state.stack}",
           f"{who} are in {group_labels(labels)}; stack {state.stack} expects {source}: "
           f"{previous}. Nothing was changed.{detail}",
           ["from_phase"])


def keyring_holds_key(state: NodesState, world: World, diags: Diagnostics, key: GossipKey,
                      nodes: Mapping[str, str]) -> None:
    """Before moving agents that already gossip encrypted: a restarted agent keeps its keyring's key."""
    ok, seen = key_installed(world, state.http_addr, key.fingerprint, nodes, state.access)
    if not ok:
        refuse(diags, "The keyring does not hold the key on every node",
               f"Keyring {seen}; the key in ${state.key_env} is {key.fingerprint}. An agent restarted now would "
               f"log `{KEYRING_WINS_LOG}` and keep gossiping with the old key. Either the key is the wrong one "
               f"(export the right one), or the agents' keyring is stale (their serf/local.keyring holds an older "
               f"set): {stale_keyring_remedy('the agent')}. "
               "Nothing was changed.",
               ["key_fingerprint"])
