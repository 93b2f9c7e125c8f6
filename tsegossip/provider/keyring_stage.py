"""A key rotation's keyring stage (install, use or remove), carried out and proven on the live keyring.

The runner sends one keyring change to the agent at http_addr (python-consul2; that agent fans it out
over the LAN pool as a serf query) and lists the keyring through it until every member shows the
change. Before the call: the key in key_env must be the planned one, every listed node an alive
member (one down during the change comes back with the old keyring only: consul#719), and the
keyring where the previous stage leaves it. A stage already done on the live keyring (a rerun after
a failure, or after someone ran the call by hand) makes no call at all. Under down_nodes = skip a down
member is recorded as a straggler instead; a refusal that counts members short names them from their
serf/local.keyring when the spec gives data_dir (read where each agent runs, `_reader`).
"""

from __future__ import annotations

import json

from tf.utils import Diagnostics

from .. import observe as obs
from ..backends import delivery as dl
from ..backends import keyring as kr
from ..delivery import Delivery, DeliveryError
from ..observe.keyrings import shortfall
from . import refusals
from .refusals import refuse
from .state import KeyringState
from .world import World

OPERATIONS = ("install", "use", "remove")
CALL_ATTEMPTS = 3
PARTIAL_GRACE = 2.0  # after a partial answer: long enough for a late reply to show in a listing
FIRST_LOOK = 0.2   # a change reaches a LAN pool of tens of agents in well under a second (measured 0.03-0.4 s)


def _met(view: obs.KeyringView, want: str, fp: str) -> bool:
    if want == "installed":
        return view.holds_everywhere(fp)
    if want == "primary":
        return view.primary_everywhere(fp)
    return view.held_nowhere(fp)


def _unmet(view: obs.KeyringView, conditions, members: dict[str, str] | None = None, held=None) -> list[str]:
    """What falls short, for a refusal; `held` (called only when something does) names the members from
    their keyring files."""
    short = [(want, fp) for want, fp in conditions if not _met(view, want, fp)]
    named = held() if (short and held is not None) else None
    return [shortfall(view, fp, want, members=members, held=named).describe() for want, fp in short]


def _reader(state: KeyringState, world: World, key):
    """A memoised reader of every listed agent's serf/local.keyring where it runs (the roles whose spec gives
    data_dir): node -> fingerprints, primary first, or None when it could not be read."""
    memo: dict[str, tuple[str, ...] | None] = {}
    addresses = dict(state.members or {})

    def read() -> dict[str, tuple[str, ...] | None]:
        if memo or not state.keyring_files:
            return memo
        for role, text in sorted(state.keyring_files.items()):
            try:
                doc = json.loads(text)
                how = Delivery.from_doc(doc["delivery"], f"keyring_files[{role}].delivery") if doc.get("delivery") \
                    else Delivery()
                paths = dict(doc["files"])
            except (ValueError, KeyError, TypeError, DeliveryError):
                continue
            ctx = dl.Context(secrets=[key.reveal()] if key else [], hide_env=[state.key_env or ""],
                             environ=world.environ, progress=world.progress)
            try:
                with world.open_delivery(how, ctx) as session:
                    for node, path in sorted(paths.items()):
                        target = dl.Target(node, addresses.get(node, ""), path, "")
                        memo[node] = session.keyring_fingerprints(target, path, min(state.timeout, 20.0))
            except dl.DeliveryFailed:
                memo.update({n: None for n in paths if n not in memo})
        world.progress(f"{state.who}: read {sum(v is not None for v in memo.values())} of {len(memo)} agents' "
                       "serf/local.keyring where they run, to name who falls short")
        return memo

    return read


@refusals.none_when_refused
def run_keyring_stage(state: KeyringState, world: World, diags: Diagnostics) -> KeyringState:
    op = state.operation
    if op not in OPERATIONS:
        refuse(diags, f"operation {op!r} is not a keyring change", f"Allowed: {', '.join(OPERATIONS)}.",
               ["operation"])
    key = refusals.gossip_key(state, world, diags, needed=True)
    who, listed = state.who, dict(state.members or {})
    try:
        statuses = world.members(state.http_addr, state.access)
    except obs.ObserveError as err:
        refuse(diags, f"{who}: cannot list the members", f"{err}. Nothing was changed.", ["http_addr"])
    down = {n: statuses.get(n, "absent") for n in sorted(listed) if statuses.get(n, "absent") != "alive"}
    skippable = state.may_be_down or {}
    refused = {n: s for n, s in down.items() if n not in skippable}
    if refused:
        hint = (" (or set down_nodes: skip on its role: the stage then goes on without it and records it as a "
                "straggler, which `tsegossip repair SPEC --keyring` brings back once it runs again)")
        refuse(diags, f"{who}: listed nodes are not alive members",
               "; ".join(f"{n}: member {s}" for n, s in refused.items())
               + ". A member down while a key is installed, made primary or removed comes back with the old "
                 "keyring only and, once the old key is gone, no member reads it (consul#719). Bring it back "
                 f"(or take it out of the spec if it is gone for good){hint}, then apply again. Nothing was changed.",
               ["members"])
    # down_nodes = skip: the change goes on without them. NumNodes counts only the members that are not failed
    # or left, so the conditions hold without them; each is recorded as a straggler of this stage.
    stragglers = {n: f"down when {state.stack} ran (member {s}, role {skippable[n]}); missed the {op}"
                  for n, s in down.items()}
    if stragglers:
        world.progress(f"{who}: skipping {len(stragglers)} down node(s) (down_nodes = skip), recorded as "
                       "stragglers: " + "; ".join(f"{n}: member {down[n]}" for n in sorted(stragglers)))
    view = world.keyring(state.http_addr, state.access)
    if view.error:
        refuse(diags, f"{who}: cannot list the keyring", f"{view.error}. Nothing was changed.", ["http_addr"])
    members = {n: statuses.get(n, "absent") for n in listed if n not in stragglers}
    if not _unmet(view, state.conditions_after):
        world.progress(f"{who}: already done on the live keyring ({view.describe()}); no call made")
        return _awaited(state, world, diags, world.clock(), state.done(f"already done: {view.describe()}",
                                                                       stragglers))
    held = _reader(state, world, key)
    unmet = _unmet(view, state.conditions_before, members, held)
    if unmet:
        previous = f"deploy {state.previous_stack} first" if state.previous_stack else "bring the keyring there first"
        refuse(diags, f"{who}: the keyring is not where stack {state.stack} starts",
               "; ".join(unmet) + f". Keyring: {view.describe()}. {previous[0].upper()}{previous[1:]}; "
               "nothing was changed.", ["held_before"])
    world.progress(f"{who}: {op} key {key.fingerprint} through {state.http_addr} (keyring now: {view.describe()})")
    t0 = world.clock()

    spent = {"calls": 0, "call_seconds": 0.0, "listings": 0, "listing_seconds": 0.0}

    def probe() -> tuple[bool, obs.KeyringView]:
        t = world.clock()
        now = world.keyring(state.http_addr, state.access)
        spent["listings"] += 1
        spent["listing_seconds"] += world.clock() - t
        return (not now.error and not _unmet(now, state.conditions_after)), now

    # The change is a serf query: a member that did not hear it (one restarting, a query relayed through a
    # stale peer) misses it, even when the answer was 200. Asking again is safe: install, use and remove are
    # idempotent on a member that already holds, uses or lacks the key.
    for attempt in range(1, CALL_ATTEMPTS + 1):
        t = world.clock()
        partial = False
        try:
            spent["calls"] += 1
            change = world.change_keyring(op, state.http_addr, state.access, key)
            told = f"answered {change.status} in {change.seconds:.2f}s"
        except kr.KeyringCallFailed as err:
            if not err.partial:  # members refused by name: asking again will not change it
                refuse(diags, f"{who}: Consul refused to {op} key {key.fingerprint}",
                       f"{err}. Keyring: {view.describe()}.", ["key_fingerprint"])
            told = f"partly answered ({err}); checking the keyring"
            partial = True
        spent["call_seconds"] += world.clock() - t
        world.progress(f"{who}: {op} (call {attempt}/{CALL_ATTEMPTS}) {told}")
        # A member that missed the query does not catch up later (measured on the fleet: 39 listings in 20 s
        # never showed it, the next call did in 0.2 s): after a partial answer look only briefly, then ask again.
        left = max(0.0, t0 + state.timeout - world.clock())
        waited = world.wait_until(probe, timeout=min(left, PARTIAL_GRACE) if partial else left / (CALL_ATTEMPTS - attempt + 1),
                                  interval=state.poll, first=FIRST_LOOK, backoff=1.5)
        final = waited.value
        if waited.ok:
            break
    else:
        refuse(diags, f"{who}: {op} of key {key.fingerprint} did not reach every member",
               f"After {CALL_ATTEMPTS} calls and {world.clock() - t0:.0f}s: "
               + "; ".join(_unmet(final, state.conditions_after, members, held)
                           or [final.error or final.describe()])
               + ". Apply again once those members are back: the change is safe to repeat.",
               ["timeout_seconds"])
    verdict = f"{op} {key.fingerprint}: done in {world.clock() - t0:.2f}s, {final.describe()}"
    if stragglers:
        verdict += f"; stragglers (down, skipped): {', '.join(sorted(stragglers))}"
    # the figures the rotation benchmark reads: API round trips and listings, and the time in each
    world.progress(f"{who}: {verdict} ({spent['calls']} call(s) {spent['call_seconds']:.3f}s, "
                   f"{spent['listings']} listing(s) {spent['listing_seconds']:.3f}s)")
    return _awaited(state, world, diags, t0, state.done(verdict, stragglers))


def _awaited(state: KeyringState, world: World, diags: Diagnostics, t0: float, done: KeyringState) -> KeyringState:
    """A rejoin's wait: once the keyring is where this change leaves it, the stragglers named in await_members
    read the others again and serf's reconnect makes them alive members (measured: within 30 s)."""
    wanted = state.awaited
    if not wanted:
        return done
    world.progress(f"{state.who}: waiting for {', '.join(wanted)} to be alive members again")

    def probe() -> tuple[bool, dict[str, str]]:
        try:
            seen = world.members(state.http_addr, state.access)
        except obs.ObserveError as err:
            return False, {n: f"unknown ({err})" for n in wanted}
        return all(seen.get(n) == "alive" for n in wanted), {n: seen.get(n, "absent") for n in wanted}

    left = max(state.timeout - (world.clock() - t0), state.poll)
    waited = world.wait_until(probe, timeout=left, interval=state.poll)
    if not waited.ok:
        refuse(diags, f"{state.who}: {', '.join(n for n, s in waited.value.items() if s != 'alive')} did not "
                      "rejoin",
               "; ".join(f"{n}: member {s}" for n, s in sorted(waited.value.items()))
               + f" after {world.clock() - t0:.0f}s. Every other member holds both keys, so every pair of them "
                 "still reads each other. Check the straggler's agent runs and holds the key in key_env (its "
                 "serf/local.keyring), then rerun `tsegossip repair SPEC --keyring`.", ["await_members"])
    world.progress(f"{state.who}: {', '.join(wanted)} alive members again after {world.clock() - t0:.1f}s")
    return done

