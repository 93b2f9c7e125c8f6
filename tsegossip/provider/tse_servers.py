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


PASTE_HINT = ("To copy it with the real key without typing the key (so it is never in a shell history): "
              "`tsegossip tse-parameters {phase} --key-env {env} | xclip -selection clipboard` "
              "(or pbcopy); the key is read from ${env} on your machine and printed only to that pipe.")


@refusals.none_when_refused
def roll_tse(state: ServerParamsState, world: World, diags: Diagnostics) -> ServerParamsState:
    target = refusals.phase(state.phase, "phase", diags)
    source = refusals.phase(state.from_phase, "from_phase", diags)
    refusals.require_tse_instance(state, diags)
    refusals.no_skipped_phase(state, diags, source, target)
    key = refusals.gossip_key(state, world, diags, needed=source.has_key or target.has_key)
    who = state.who
    instance, region = state.instance_id, state.region
    # Credentials and instance first: an operator told to go to the console must not learn only
    # afterwards that tsegossip cannot see the instance (wrong keys, wrong region, wrong id).
    first = _first_status(state, world, diags)
    world.progress(f"{who}: TSE instance {instance} ({region}) found: {first.name or 'unnamed'}, "
                   f"type {first.engine_type or '?'}, {first.status}")
    labels = server_phases(state, world)
    rewrite = bool(state.rewrite)
    if rewrite and (source is not target or not target.has_key):
        refuse(diags, f"rewrite of {who} needs one keyed phase",
               f"A key rotation's configs stage saves the same phase with the new key (got {source} -> {target}). "
               "Nothing was changed.", ["rewrite"])
    if all_in(labels, target) and not rewrite:
        world.progress(f"{who}: TSE servers already in {target}; nothing to do")
        return state.moved(labels)
    if any(lab not in (str(source), str(target)) for lab in labels.values()):
        refusals.not_ready(diags, state, "servers", labels, source, "")
    if source.has_key and target.has_key:
        refusals.keyring_holds_key(state, world, diags, key, state.node_addresses)
        world.progress(f"{who}: the servers' keyring holds {key.fingerprint}, the key in ${state.key_env}: "
                       + ("saving it as the instance's gossip key (a key rotation's configs stage: TSE rolls its "
                          "servers, which restart with their keyring's primary, already this key)" if rewrite
                          else "adopting it"))

    shown = json.dumps(tse_parameters(target, key, reveal=False), indent=2)
    world.progress(f"{who}: TSE has no API for these parameters. In the console of instance {instance} "
                   f"({region}), System parameters -> Gossip encryption, save (key shown redacted, fingerprint "
                   f"{key.fingerprint if key else 'none'}):\n{shown}\n"
                   + PASTE_HINT.format(phase=target, env=state.key_env))
    if (world.environ.get(INTERACTIVE_ENV) or "").strip() == "1":
        _ask_operator(state, world, diags, shown)
    timeout = state.tse_timeout
    world.progress(f"{who}: waiting up to {timeout:.0f}s for {instance} to roll its servers and run again "
                   f"with the servers in {target} (evidence: the instance's status and the servers' own config)")
    statuses = [first.status or "not listed"]

    def look() -> tuple[bool, tuple[str, dict[str, str]]]:
        status, running = _instance_status(state, world, diags)
        if status != statuses[-1]:
            statuses.append(status)
            world.progress(f"{who}: {instance}: {status}")
        now = server_phases(state, world)
        _refuse_wrong_parameters(state, diags, now, source, target, shown)
        rolled = any(st in ROLLING for st in statuses)
        if running and rolled and not all_in(now, target) and not any(lab in ROLLING_LABELS for lab in now.values()):
            refuse(diags, f"TSE rolled instance {instance} but the servers are not in {target}",
                   f"Statuses seen: {' -> '.join(statuses)}; servers now: {group_labels(now)}. The parameters "
                   f"saved were not these (or not saved on this instance); save these and apply again; no client "
                   f"was restarted:\n{shown}", ["phase"])
        # The same phase before and after: only a roll seen (and run again) shows the console was saved.
        done = running and all_in(now, target) and (not rewrite or any(st in ROLLING for st in statuses))
        return done, (status, now)

    waited = world.wait_until(look, timeout=timeout, interval=state.poll)
    last_status, labels = waited.value
    if not waited.ok:
        refuse(diags, f"TSE servers did not reach {target} within {timeout:.0f}s",
               f"Waited for instance {instance} to report running after a roll and for the servers to show "
               f"{target}. Last seen: status {last_status} (statuses seen: {' -> '.join(statuses)}); servers: "
               f"{group_labels(labels)}. Save these parameters in the TSE console (System parameters -> Gossip "
               f"encryption; the key is the one in ${state.key_env}, shown redacted) and apply again:\n{shown}",
               ["phase"])
    if target.has_key:
        refusals.keyring_holds_key(state, world, diags, key, state.node_addresses)
    world.progress(f"{who}: {instance} running, servers in {target} (statuses seen: {' -> '.join(statuses)})")
    return state.moved(labels)


INTERACTIVE_ENV = "TSEGOSSIP_TSE_INTERACTIVE"   # set by `tsegossip deploy --interactive`


def _ask_operator(state: ServerParamsState, world: World, diags: Diagnostics, shown: str) -> None:
    """Interactive mode: wait for the operator to say the console is saved (or to stop here)."""
    world.sleep(0.5)  # let deploy echo the instructions first: the prompt goes straight to the terminal
    answer = world.ask(f"\n{state.who}: save the parameters shown above in the TSE console, then press Enter "
                       "to watch the roll (q and Enter: stop here, nothing changed): ")
    if answer is None:
        world.progress(f"{state.who}: no terminal to ask on (a pipeline?): watching for the roll without asking")
        return
    if answer.strip().lower() in ("q", "quit", "n", "no", "stop"):
        refuse(diags, "Stopped by the operator before the console save",
               f"Nothing was changed. When ready, apply this stack again and save in the console:\n{shown}",
               ["phase"])
    world.progress(f"{state.who}: the operator says the console is saved; watching the roll")


ROLLING = ("updating", "restarting")
ROLLING_LABELS = ("unreachable", "down", "left", "failed")


def _refuse_wrong_parameters(state: ServerParamsState, diags: Diagnostics, now: dict[str, str], source: Phase,
                             target: Phase, shown: str) -> None:
    """A server that came back in a phase that is neither where this step starts nor where it goes was
    rolled with other parameters (say verify_outgoing on in step 1): stop before any client moves."""
    wrong = {n: lab for n, lab in now.items() if lab in Phase.names() and lab not in (str(source), str(target))}
    if wrong:
        refuse(diags, f"TSE servers rolled with the wrong parameters: {group_labels(wrong)}, not {target}",
               f"This step moves the servers {source} -> {target}; the live config of "
               f"{', '.join(sorted(wrong))} shows {group_labels(wrong)}. No client was restarted. Save these "
               f"parameters in the console and apply again:\n{shown}", ["phase"])


def _first_status(state: ServerParamsState, world: World, diags: Diagnostics) -> tse.InstanceStatus:
    """The first DescribeSREInstances: any failure refuses the step before the operator is sent anywhere."""
    try:
        st = world.tse_status(state.instance_id, state.region)
    except tse.TSEError as err:
        refuse(diags, f"Cannot ask TSE about instance {state.instance_id}",
               f"{err}. Check TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY, the region and "
               f"{tse.ENDPOINT_ENV}; nothing was changed and nothing needs saving in the console yet.",
               ["instance_id"])
    if st.status is None:
        refuse(diags, f"TSE instance {state.instance_id} is not listed in region {state.region}",
               "DescribeSREInstances returned no instance with that id (an empty Content): check instance_id "
               "and region in the spec. Nothing was changed.", ["instance_id"])
    if st.status in tse.FAILED:
        refuse(diags, f"TSE instance {state.instance_id} reports {st.status}",
               "Look at the console's task log; nothing was changed.", ["instance_id"])
    if st.status != tse.RUNNING:
        refuse(diags, f"TSE instance {state.instance_id} is {st.status}, not running",
               "A task is in progress on the instance; wait for it to finish and apply again. Nothing was changed.",
               ["instance_id"])
    return st


def _instance_status(state: ServerParamsState, world: World, diags: Diagnostics) -> tuple[str, bool]:
    """(what TSE says, whether it runs) while waiting; refuses on a failed task. A failed call (the
    SDK has already retried it) is shown and waited through: the next poll asks again."""
    try:
        st = world.tse_status(state.instance_id, state.region)
    except tse.TSEError as err:
        return f"error: {err}", False
    if st.status in tse.FAILED:
        refuse(diags, f"TSE instance {state.instance_id} reports {st.status}",
               "Look at the console's task log; no client was restarted.", ["instance_id"])
    return st.status or "not listed", st.running
