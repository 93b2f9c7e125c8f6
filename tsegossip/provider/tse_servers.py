"""The servers of a TSE instance: TSE has no API for the gossip parameters, so the operator saves
them in the console; the provider shows what to save (key redacted), then waits until
DescribeSREInstances says the instance runs again and the servers' own API shows the new phase."""

from __future__ import annotations

import json

from tf.utils import Diagnostics

from ..agentconfig import tse_parameters
from ..backends import tse
from ..phases import Phase
from . import refusals
from .live import group_labels, server_views
from .refusals import refuse
from .state import ServerParamsState
from .world import World


def server_phases(state: ServerParamsState, world: World) -> dict[str, str]:
    return {n: v.label for n, v in server_views(state, world).items()}


def all_in(labels: dict[str, str], target: Phase) -> bool:
    """What the servers must look like after this step: every one observed in target."""
    return all(label == str(target) for label in labels.values())


@refusals.none_when_refused
def roll_tse(state: ServerParamsState, world: World, diags: Diagnostics) -> ServerParamsState:
    target = refusals.phase(state.phase, "phase", diags)
    source = refusals.phase(state.from_phase, "from_phase", diags)
    refusals.require_tse_instance(state, diags)
    refusals.no_skipped_phase(state, diags, source, target)
    key = refusals.gossip_key(state, world, diags, needed=source.has_key or target.has_key)
    who = state.who
    labels = server_phases(state, world)
    if all_in(labels, target):
        world.progress(f"{who}: TSE servers already in {target}; nothing to do")
        return state.moved(labels)
    if any(lab not in (str(source), str(target)) for lab in labels.values()):
        refusals.not_ready(diags, state, "servers", labels, source, "")
    if source.has_key and target.has_key:
        refusals.keyring_holds_key(state, world, diags, key, state.node_addresses)

    shown = json.dumps(tse_parameters(target, key, reveal=False), indent=2)
    instance, region = state.instance_id, state.region
    world.progress(f"{who}: TSE has no API for these parameters. In the console of instance {instance} "
                   f"({region}), System parameters -> Gossip encryption, save (key shown redacted; paste yours "
                   f"from ${state.key_env}):\n{shown}")
    timeout = state.tse_timeout
    world.progress(f"{who}: waiting up to {timeout:.0f}s for {instance} to run again with servers in {target}")

    def look() -> tuple[bool, tuple[str, dict[str, str]]]:
        status, running = _instance_status(state, world, diags)
        now = server_phases(state, world)
        return running and all_in(now, target), (status, now)

    waited = world.wait_until(look, timeout=timeout, interval=state.poll)
    last_status, labels = waited.value
    if not waited.ok:
        refuse(diags, f"TSE servers did not reach {target} within {timeout:.0f}s",
               f"Instance {instance}: {last_status}; servers seen: {group_labels(labels)}. Save these parameters "
               f"in the TSE console (System parameters -> Gossip encryption; the key is the one in "
               f"${state.key_env}, shown redacted) and apply again:\n{shown}",
               ["phase"])
    world.progress(f"{who}: {instance} running, servers in {target}")
    return state.moved(labels)


def _instance_status(state: ServerParamsState, world: World, diags: Diagnostics) -> tuple[str, bool]:
    """(what TSE says, whether it runs); refuses on a failed task or when TSE cannot be asked at all."""
    try:
        st = world.tse_status(state.instance_id, state.region)
    except tse.TSEError as err:
        if "must be set" in str(err):
            refuse(diags, "Cannot ask TSE about the instance", str(err), ["instance_id"])
        return f"error: {err}", False
    if st.status in tse.FAILED:
        refuse(diags, f"TSE instance {state.instance_id} reports {st.status}",
               "Look at the console's task log; nothing else was changed.", ["instance_id"])
    return st.status or "not listed", st.running
