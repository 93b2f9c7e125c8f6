"""A gossip key rotation as reviewable stages: install, use, configs, remove; one stack each, none restarting.

Consul's own procedure (shared/facts/consul.md): `keyring -install NEW` until every member holds it, `-use
NEW`, `-remove OLD`. Measured on memberlist (shared/facts/gossip-compat.md): a member whose keyring is [K]
alone cannot read one that already sends with K2, while [K, K2] and [K2 primary, K] gossip. So the rule
this module proves stage by stage: every member can read what every other sends, i.e. each member's primary
key is held by every member, in every mix of done and not-yet-done members a stage goes through. A
fourth stage Consul's procedure leaves out (and operators trip over: consul#719, puppet-consul#256):
each node's config fragment carries the new key before the old one goes, so an agent that starts without
its keyring file (a rebuilt data dir, disable_keyring_file) starts with a key the cluster reads.

The rollback before `remove` is planned too, as data (undo stages that walk back through the same states):
after `remove` the old key is gone from every keyring, and the way back is a rotation of its own.

Pure functions over the spec model, like the planner: no I/O, no cdktf, no key (only what a plan shows of
one: its fingerprint, from tsegossip.keys.KeyShown).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace

from . import planner
from .errors import PlanError
from .expectations import SERVERS, skippable_nodes
from .keys import UNKNOWN_FINGERPRINT, KeyShown
from .phases import Phase
from .spec import Rollout, ServerType


class StageKind(enum.Enum):
    INSTALL = "install"    # POST /v1/operator/keyring: the key added to every member's keyring
    USE = "use"            # PUT: the key made every member's primary (the one it encrypts with)
    CONFIGS = "configs"    # each node's fragment rewritten to the key and delivered; no restart
    REMOVE = "remove"      # DELETE: the key taken out of every member's keyring

    def __str__(self) -> str:
        return self.value


class KeyName(enum.Enum):
    """The two keys of a rotation, by role: the proofs are about these; fingerprints are what a plan shows."""

    OLD = "old"    # the current key, in key_env
    NEW = "new"    # the key rotated to, in rotate_to_env

    def __str__(self) -> str:
        return self.value


OLD, NEW = KeyName.OLD, KeyName.NEW

# Consul's call for each stage; configs is no keyring call at all.
CALLS = {StageKind.INSTALL: "POST /v1/operator/keyring", StageKind.USE: "PUT /v1/operator/keyring",
         StageKind.CONFIGS: "deliver each node's config fragment", StageKind.REMOVE: "DELETE /v1/operator/keyring"}


@dataclass(frozen=True)
class Keyring:
    """Where the cluster's keys stand between stages: what every member's keyring holds, the key every member
    encrypts with, and the key every node's config fragment carries (`encrypt`)."""

    held: tuple[KeyName, ...]
    primary: KeyName
    configured: KeyName

    def as_member(self) -> MemberKeys:
        return MemberKeys(frozenset(self.held), self.primary)

    def fresh_start(self) -> MemberKeys:
        """An agent that starts without its keyring file: it has only its fragment's key."""
        return MemberKeys(frozenset({self.configured}), self.configured)


@dataclass(frozen=True)
class MemberKeys:
    """One kind of member during a stage: the keys its keyring holds and the one it sends with."""

    held: frozenset[KeyName]
    primary: KeyName

    def reads(self, other: MemberKeys) -> bool:
        """Whether this member decrypts what `other` sends (memberlist tries every installed key)."""
        return other.primary in self.held

    def __str__(self) -> str:
        keys = ", ".join(k.value for k in sorted(self.held, key=lambda k: k.value != "old"))
        return f"[{keys}; sends {self.primary}]"


@dataclass(frozen=True)
class KeyPairCheck:
    a: MemberKeys
    b: MemberKeys

    @property
    def ok(self) -> bool:
        return self.a.reads(self.b) and self.b.reads(self.a)

    def __str__(self) -> str:
        return f"{self.a} ↔ {self.b}: {'ok' if self.ok else 'SPLIT'}"


def prove_keys(during: tuple[MemberKeys, ...]) -> tuple[KeyPairCheck, ...]:
    """Every pair of the kinds of member that coexist (each kind with itself included): does each read the other?"""
    return tuple(KeyPairCheck(a, b) for a, b in itertools.combinations_with_replacement(during, 2))


@dataclass(frozen=True)
class KeyringGate:
    """A condition a stage's gate checks: on the LAN entry of GET /v1/operator/keyring (`WAN` false; NumNodes
    counts the members that answered) and, for fragments, on each listed node's delivery."""

    held_by_all: tuple[KeyName, ...] = ()     # Keys[k] == NumNodes
    primary_on_all: KeyName | None = None     # PrimaryKeys[k] == NumNodes
    held_by_none: tuple[KeyName, ...] = ()    # k not in Keys
    fragments: KeyName | None = None          # every listed node's fragment carries k (read back by sha256)
    every_listed_node: bool = True            # NumNodes counts every listed node: none is down

    # A member down while a key is installed or made primary comes back sending with, or holding only, the
    # old key, and after remove no member reads it (consul#719, serf#579). So a listed node must be alive
    # unless its role says `down_nodes: skip`: then it is a straggler, brought back by rejoin_calls.

    def conditions(self, name: Callable[[KeyName], str]) -> tuple[str, ...]:
        out = [f"Keys[{name(k)}] == NumNodes" for k in self.held_by_all]
        if self.primary_on_all is not None:
            out.append(f"PrimaryKeys[{name(self.primary_on_all)}] == NumNodes")
        out += [f"{name(k)} not in Keys" for k in self.held_by_none]
        if self.fragments is not None:
            out.append(f"every listed node's fragment carries {name(self.fragments)}")
        if self.every_listed_node:
            out.append("every listed node an alive member (counted in NumNodes)")
        return tuple(out)


@dataclass(frozen=True)
class RotationProof:
    """Why gossip holds during a stage: the kinds of member that coexist while the call propagates (or the
    fragments are delivered), every pair checked, and an agent that would start from its fragment alone
    once the stage is done, checked against the members."""

    during: tuple[MemberKeys, ...]
    checks: tuple[KeyPairCheck, ...]
    fresh_start: tuple[KeyPairCheck, ...]
    why: str

    @property
    def safe(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def fresh_start_ok(self) -> bool:
        return all(c.ok for c in self.fresh_start)

    def summary(self) -> str:
        kinds = ", ".join(str(m) for m in self.during)
        n = len(self.checks)
        if self.safe:
            return f"members during the stage: {kinds}; all {n} pair(s) read each other"
        bad = "; ".join(str(c) for c in self.checks if not c.ok)
        return f"members during the stage: {kinds}; split: {bad}"


@dataclass(frozen=True)
class RotationStage:
    """One stack of a rotation: one Consul call (or the fragments), its gates and its proof.

    `index` is the stage's place in the forward order (1-4); an undo stage carries the index of the stage it
    undoes (`undoes` true), so `<name>-rotate-undo3-configs` takes back `<name>-rotate-3-configs`."""

    index: int
    stack: str
    kind: StageKind
    key: KeyName            # the key the call names (installed, made primary, written, removed)
    undoes: bool
    before: Keyring
    after: Keyring
    requires: KeyringGate   # the gate before: where the previous stage leaves the cluster
    verifies: KeyringGate   # the gate after: what makes this stage done
    proof: RotationProof
    servers_roll: bool = False   # configs with TSE servers: saving the console's parameters rolls them (TSE's own)

    @property
    def call(self) -> str:
        return CALLS[self.kind]

    @property
    def restarts(self) -> bool:
        """Whether tsegossip restarts agents in this stage: never (TSE rolls its own servers on a save)."""
        return False

    def does(self, name: Callable[[KeyName], str]) -> str:
        k = name(self.key)
        return {
            StageKind.INSTALL: f"install {k} in every member's keyring ({self.call})",
            StageKind.USE: f"make {k} every member's primary key ({self.call})",
            StageKind.CONFIGS: (f"rewrite each node's config fragment to {k} and deliver it, no restart"
                                + ("; TSE servers: save the console's parameters with it (TSE rolls them)"
                                   if self.servers_roll else "")),
            StageKind.REMOVE: f"remove {k} from every member's keyring ({self.call})",
        }[self.kind]


@dataclass(frozen=True)
class RotationPlan:
    rollout: Rollout
    phase: Phase                          # the one phase every agent runs, before and after
    old: KeyShown                         # what the plan shows of the current key (key_env)
    new: KeyShown                         # of the new key (rotate_to_env)
    stages: tuple[RotationStage, ...]     # install, use, configs, remove
    undo: tuple[RotationStage, ...]       # undo3-configs, undo2-use, undo1-install: the way back before remove
    warnings: tuple[str, ...]

    @property
    def initial(self) -> Keyring:
        return self.stages[0].before

    @property
    def final(self) -> Keyring:
        return self.stages[-1].after

    def fingerprint(self, which: KeyName) -> str:
        return (self.old if which is OLD else self.new).fingerprint

    def name(self, which: KeyName) -> str:
        """`old aaaa11112222`: a key as every output names it (the fingerprint, never the key)."""
        return f"{which} {self.fingerprint(which)}"

    def undo_from(self, stack: str) -> tuple[RotationStage, ...]:
        """The undo stages, in order, that take the cluster back from where `stack` (a forward stage) left it."""
        stage = self.stage(stack)
        if stage.undoes or stage.kind is StageKind.REMOVE:
            raise PlanError(f"{stack}: no rollback from here; " + (
                "it is an undo stage itself" if stage.undoes else
                "the old key is gone from every keyring: the way back is a rotation of its own (rotate_to_env "
                "naming the old key's variable)"))
        return tuple(u for u in self.undo if u.index <= stage.index)

    def stage(self, stack: str) -> RotationStage:
        for s in (*self.stages, *self.undo):
            if s.stack == stack:
                return s
        known = ", ".join(s.stack for s in (*self.stages, *self.undo))
        raise PlanError(f"no stage with stack id {stack!r}; this rotation's stacks: {known}")


def stage_stack_id(rollout: Rollout, index: int, kind: StageKind, undo: bool = False) -> str:
    """Stable ids: fixed by what a stage does, never by where the rotation resumes (at most 40 + 21 characters).
    Undo stages mirror the phase rollbacks' `<name>-undo<k>-<phase>`: named by the forward stage k they take
    back (`kind` is that stage's), so `<name>-rotate-undo1-install` is the DELETE of the new key."""
    return f"{rollout.name}-rotate-{'undo' if undo else ''}{index}-{kind.value}"


# ---- refusals: what the spec can know (what the live keyring says is the provider's gate) -----------------


def _phase_of_cluster(rollout: Rollout) -> Phase:
    s = rollout.servers
    waiting = [(i, g) for i, g in enumerate(rollout.client_groups) if not g.joined]
    if waiting:
        i, g = waiting[0]
        raise PlanError(
            f"client_groups[{i}].joined: client group {g.name} has not joined (joined: false): a rotation changes the "
            "keyrings of the members there are, and agents that join later would bring the old key from their "
            "fragments. Join them first (the spec without rotate_to_env plans it), or leave the group out of the "
            "spec until the rotation is done")
    phases = {SERVERS: s.phase, **{g.name: g.phase for g in rollout.client_groups}}
    if len(set(phases.values())) > 1:
        today = ", ".join(f"{role} {p}" for role, p in phases.items())
        paths = ", ".join(["servers.phase"] + [f"client_groups[{i}].phase" for i in range(len(rollout.client_groups))])
        raise PlanError(
            f"{paths}: a rotation needs the servers and every client group in one phase, but today {today}: a phase "
            "rollout is part done. Finish it first (plan the spec without rotate_to_env, deploy it and update the "
            "phases), then rotate; allowed: every role in accept-encrypted, send-encrypted or enforced")
    phase = s.phase
    if not phase.has_key:
        raise PlanError(
            f"servers.phase: every agent runs {phase}, which holds no key to rotate; allowed: accept-encrypted, "
            "send-encrypted or enforced. Roll gossip encryption out with the new key as key_env instead (drop "
            "rotate_to_env)")
    if rollout.target is not phase:
        raise PlanError(
            f"target: {rollout.target.value!r} differs from {phase.value!r}, the phase every agent runs: a rotation "
            f"changes only the key (default target is enforced); set target: {phase.value}, and move phases in a spec "
            "of its own before or after the rotation")
    for i, u in enumerate(rollout.unmanaged):
        if u.phase is not None and not u.phase.has_key:
            raise PlanError(
                f"unmanaged[{i}].phase: unmanaged member {u.name} runs {u.phase}: it has no keyring, so no install "
                "reaches every member (Consul answers 'No keyring to modify (encryption not enabled)') and Keys[new] "
                "never reaches NumNodes. Move it to accept-encrypted first, or take it out of the pool")
    return phase


def _check_fields(rollout: Rollout, old: KeyShown, new: KeyShown) -> None:
    if rollout.rotate_to_env == rollout.key_env:
        raise PlanError(
            f"rotate_to_env: {rollout.rotate_to_env!r} is also key_env: the new key needs a variable of its own "
            "(e.g. TSEGOSSIP_NEW_KEY); key_env keeps the current key until the rotation is done")
    if rollout.rotate_to_fingerprint and rollout.rotate_to_fingerprint == rollout.key_fingerprint:
        raise PlanError(
            f"rotate_to_fingerprint: {rollout.rotate_to_fingerprint!r} is also key_fingerprint: the new key would be the "
            "current one; pin the new key's fingerprint (`tsegossip keygen` prints it)")
    if new.fingerprint != UNKNOWN_FINGERPRINT and new.fingerprint == old.fingerprint:
        raise PlanError(
            f"rotate_to_env: ${new.env} holds the same key as ${old.env} (fingerprint {new.fingerprint}): a rotation "
            "needs a new key; generate one with `tsegossip keygen`")


# ---- the stages --------------------------------------------------------------------------------------------


_START = Keyring((OLD,), OLD, OLD)


def _during(kind: StageKind, before: Keyring, after: Keyring) -> tuple[MemberKeys, ...]:
    """The kinds of member while the stage runs: a keyring call reaches members one by one (some done, some
    not yet); delivering fragments changes no keyring."""
    if kind is StageKind.CONFIGS:
        return (before.as_member(),)
    return (before.as_member(), after.as_member())


def _why(kind: StageKind, key: KeyName, before: Keyring, after: Keyring) -> str:
    other = OLD if key is NEW else NEW
    if kind is StageKind.INSTALL:
        return (f"every member keeps sending with {before.primary}, which every member holds; {key} is only added, "
                f"so members that have it and members that do not yet read each other")
    if kind is StageKind.USE:
        return (f"while the call propagates some members send with {key} and some still with {other}; every member "
                f"holds both ({key} verified on every member before this stage), so every pair decrypts")
    if kind is StageKind.CONFIGS:
        starts = (f"from here such an agent starts with {key}, every member's primary" if after.primary is key else
                  f"from here such an agent starts with {key}, which every member holds but none sends with until "
                  f"{key} is primary again")
        return (f"no keyring changes and no agent restarts; a fragment's key is read only when an agent starts "
                f"without its keyring file, and {starts}")
    return (f"every member sends with {before.primary} ({before.primary} verified as every member's primary before "
            f"this stage), so taking {key} away removes a key no member sends with")


def _stage(rollout: Rollout, index: int, kind: StageKind, key: KeyName, before: Keyring, undo: StageKind | None,
           requires: KeyringGate, verifies: KeyringGate) -> RotationStage:
    """A stage from `before`; `undo` is the kind of the forward stage it takes back (None: a forward stage)."""
    if kind is StageKind.INSTALL:
        after = Keyring(tuple(sorted({*before.held, key}, key=lambda k: k.value != "old")), before.primary,
                        before.configured)
    elif kind is StageKind.USE:
        after = Keyring(before.held, key, before.configured)
    elif kind is StageKind.CONFIGS:
        after = Keyring(before.held, before.primary, key)
    else:
        after = Keyring(tuple(k for k in before.held if k is not key), before.primary, before.configured)
    during = _during(kind, before, after)
    members = (after.as_member(),)
    proof = RotationProof(during, prove_keys(during), tuple(KeyPairCheck(after.fresh_start(), m) for m in members),
                          _why(kind, key, before, after))
    tse_roll = kind is StageKind.CONFIGS and rollout.servers.type is ServerType.TSE
    stack = stage_stack_id(rollout, index, undo or kind, undo is not None)
    return RotationStage(index, stack, kind, key, undo is not None, before, after, requires, verifies, proof,
                         servers_roll=tse_roll)


def _forward(rollout: Rollout) -> tuple[RotationStage, ...]:
    gates = [
        (StageKind.INSTALL, KeyringGate(held_by_all=(OLD,), primary_on_all=OLD),
         KeyringGate(held_by_all=(OLD, NEW), primary_on_all=OLD)),
        (StageKind.USE, KeyringGate(held_by_all=(OLD, NEW)),
         KeyringGate(held_by_all=(OLD, NEW), primary_on_all=NEW)),
        (StageKind.CONFIGS, KeyringGate(held_by_all=(OLD, NEW), primary_on_all=NEW),
         KeyringGate(held_by_all=(OLD, NEW), primary_on_all=NEW, fragments=NEW)),
        (StageKind.REMOVE, KeyringGate(held_by_all=(NEW,), primary_on_all=NEW, fragments=NEW),
         KeyringGate(held_by_all=(NEW,), primary_on_all=NEW, held_by_none=(OLD,))),
    ]
    out, state = [], _START
    for i, (kind, requires, verifies) in enumerate(gates, start=1):
        key = OLD if kind is StageKind.REMOVE else NEW
        stage = _stage(rollout, i, kind, key, state, None, requires, verifies)
        out.append(stage)
        state = stage.after
    return tuple(out)


def _undo(rollout: Rollout, forward: tuple[RotationStage, ...]) -> tuple[RotationStage, ...]:
    """Back from after stage 3 (or 2, or 1) through the states the forward stages went through: fragments back
    to the old key, the old key primary again, the new key removed."""
    gates = {
        StageKind.CONFIGS: (KeyringGate(held_by_all=(OLD, NEW), primary_on_all=NEW),
                            KeyringGate(held_by_all=(OLD, NEW), primary_on_all=NEW, fragments=OLD)),
        StageKind.USE: (KeyringGate(held_by_all=(OLD, NEW), fragments=OLD),
                        KeyringGate(held_by_all=(OLD, NEW), primary_on_all=OLD)),
        StageKind.INSTALL: (KeyringGate(held_by_all=(OLD,), primary_on_all=OLD, fragments=OLD),
                            KeyringGate(held_by_all=(OLD,), primary_on_all=OLD, held_by_none=(NEW,))),
    }
    kind_of = {StageKind.CONFIGS: StageKind.CONFIGS, StageKind.USE: StageKind.USE, StageKind.INSTALL: StageKind.REMOVE}
    key_of = {StageKind.CONFIGS: OLD, StageKind.USE: OLD, StageKind.INSTALL: NEW}
    out = []
    for f in reversed(forward[:3]):
        requires, verifies = gates[f.kind]
        stage = _stage(rollout, f.index, kind_of[f.kind], key_of[f.kind], f.after, f.kind, requires, verifies)
        assert stage.after == f.before, (stage.stack, stage.after, f.before)  # back through the same states
        out.append(stage)
    return tuple(out)


def _warnings(rollout: Rollout, phase: Phase, stages: tuple[RotationStage, ...], undo: tuple[RotationStage, ...],
              old: KeyShown, new: KeyShown) -> list[str]:
    out = [f"the keyring calls need a token with keyring = \"write\" (in ${rollout.consul.token_env}); tsegossip "
           "otherwise only reads"]
    for line in (stages, undo):
        for s, nxt in zip(line, line[1:]):  # the last stage of each line leaves fragment and primary alike
            if not s.proof.fresh_start_ok:
                out.append(
                    f"between {s.stack} and {nxt.stack}, an agent that starts without its keyring file (a rebuilt data "
                    f"dir, disable_keyring_file) has only the {s.after.configured} key of its fragment and cannot decrypt "
                    f"what the others send with the {s.after.primary} key: deploy {nxt.stack} right after, and rebuild "
                    "no agent in between")
    listed = [u.name for u in rollout.unmanaged]
    if listed:
        out.append(
            f"unmanaged members ({', '.join(listed)}): their keyrings change with everyone's (a keyring call reaches "
            "every LAN member and NumNodes counts them), but their fragments are not tsegossip's: have their owners "
            "put the new key in their encrypt before the remove stage")
    skipping = sorted(set(skippable_nodes(rollout).values()), key=lambda role: (role != SERVERS, role))
    if skipping:
        out.append(
            f"down_nodes = skip on {', '.join(skipping)}: a member of it down during install, use or remove is left "
            "behind as a straggler holding the old keyring only; once the new key is primary it reads nothing the "
            "others send (consul#719). When it runs again, `tsegossip repair SPEC --keyring` brings it back through "
            "the keyring API: the others send with the old key again until the straggler holds the new one (the "
            "old key is in use for that while, and key_env must still hold it)")
    if phase is Phase.ACCEPT_ENCRYPTED:
        out.append("every agent is accept-encrypted and still sends plaintext: the rotation changes the key agents "
                   "will encrypt with, not what crosses the network today")
    if rollout.servers.type is ServerType.TSE:
        out.append(f"servers are TSE-managed: the configs stage shows the console's parameters with the new key "
                   f"(redacted; `tsegossip tse-parameters {phase} --key-env {rollout.rotate_to_env}` copies it) and "
                   "TSE rolls its servers on the save (3–8 minutes); safe: the phase stays, and every keyring "
                   "already holds the new key as primary")
    for k in (old, new):
        if k.fingerprint == UNKNOWN_FINGERPRINT:
            field = "key_fingerprint" if k is old else "rotate_to_fingerprint"
            out.append(f"the {'current' if k is old else 'new'} key's fingerprint is unknown (${k.env} not set here, "
                       f"{field} not pinned): review cannot tell which key this is; pin {field} in the spec")
    return out


def plan_rotation(rollout: Rollout, old: KeyShown | None = None, new: KeyShown | None = None) -> RotationPlan:
    """The stages rotating `rollout`'s key; raises PlanError, naming the field, when the spec allows none.

    `old` and `new` are what the caller's key look-up shows (tsegossip.keys.key_for_plan and
    rotation_key_for_plan); by default the spec's pinned fingerprints, or unknown."""
    if not rollout.rotates:
        raise PlanError("rotate_to_env: not set; the spec plans a phase rollout (tsegossip.planner), not a rotation")
    old = old or _shown(rollout.key_env, rollout.key_fingerprint)
    new = new or _shown(rollout.rotate_to_env, rollout.rotate_to_fingerprint)
    _check_fields(rollout, old, new)
    phase = _phase_of_cluster(rollout)
    # The phase planner's own checks of today (every pair of roles, every unmanaged member, gossips): with every
    # role at the target it plans no step, so a step here is our bug.
    if planner.plan(rollout).steps:
        raise PlanError(f"internal: a rotation at {phase} still has phase steps")
    stages = _forward(rollout)
    undo = _undo(rollout, stages)
    for s in (*stages, *undo):
        if not s.proof.safe:
            raise PlanError(f"internal: stage {s.stack} failed its own proof: {s.proof.summary()}")
    return RotationPlan(rollout, phase, old, new, stages, undo, tuple(_warnings(rollout, phase, stages, undo, old, new)))


def _shown(env: str, pinned: str | None) -> KeyShown:
    return KeyShown(env, pinned or UNKNOWN_FINGERPRINT, f"(not in ${env})", "pinned" if pinned else "none")


# ---- a straggler's way back: the keyring rejoin -----------------------------------------------------------


@dataclass(frozen=True)
class RejoinCall:
    """One keyring call of a rejoin: `awaits` when the stragglers must be alive members once it is done."""

    operation: str          # install | use | remove
    key: KeyName
    requires: KeyringGate
    verifies: KeyringGate
    awaits: bool
    why: str
    checks: tuple[KeyPairCheck, ...] = ()   # the pairs that must read each other while the call propagates

    @property
    def safe(self) -> bool:
        return all(c.ok for c in self.checks)


def _after_call(m: MemberKeys, operation: str, key: KeyName) -> MemberKeys:
    if operation == "install":
        return MemberKeys(m.held | {key}, m.primary)
    if operation == "use":
        return MemberKeys(m.held, key)
    return MemberKeys(m.held - {key}, m.primary)


def _proven(calls: list[RejoinCall], old_removed: bool) -> tuple[RejoinCall, ...]:
    """Each call with its pair checks: the members that are up, some reached and some not yet, must read each
    other throughout; the stragglers are checked against them from the call that awaits them on (before
    it they are cut off already, which is why the rejoin runs)."""
    others = MemberKeys(frozenset({NEW} if old_removed else {OLD, NEW}), NEW)
    straggler, joined, out = MemberKeys(frozenset({OLD}), OLD), False, []
    for c in calls:
        after = _after_call(others, c.operation, c.key)
        kinds = [others, after]
        if joined:  # a member again: the call reaches it too
            kinds += [straggler, _after_call(straggler, c.operation, c.key)]
        checks = prove_keys(tuple(dict.fromkeys(kinds)))
        if c.awaits:  # once every member that is up sends with the key the stragglers hold, they read all
            checks += tuple(KeyPairCheck(straggler, m) for m in (after,))
        out.append(replace(c, checks=checks))
        others = after
        if joined:
            straggler = _after_call(straggler, c.operation, c.key)
        joined = joined or c.awaits
        if not out[-1].safe:
            raise PlanError(f"internal: rejoin call {c.operation} {c.key} fails its own proof: "
                            + "; ".join(str(x) for x in checks if not x.ok))
    if straggler != others:
        raise PlanError(f"internal: a rejoin ends with the stragglers at {straggler}, the others at {others}")
    return tuple(out)


def rejoin_calls(old_removed: bool) -> tuple[RejoinCall, ...]:
    """The calls bringing back stragglers that missed the install and came back after the new key became
    primary: they hold the old key only, so they read nothing the others send (consul#719). A keyring
    change cannot reach them (it is a serf query they cannot decrypt) and Consul 1.14 has no local-only
    install, so the others step back to sending with the old key, which every member holds then; the
    stragglers read them, serf's reconnect brings them back, and the install of the new key reaches
    them with everyone else; then forward again. Every pair reads each other at every point: all but the
    stragglers hold both keys throughout, and the stragglers hear only the old key until they hold the new.
    """
    # The gates leave the new key out until it reaches the stragglers: once the others can read a straggler
    # (from the old key's install on), NumNodes counts it, and it holds only the old key.
    out = []
    if old_removed:
        out.append(RejoinCall("install", OLD, KeyringGate(held_by_all=(NEW,), primary_on_all=NEW),
                              KeyringGate(held_by_all=(OLD,)), False,
                              "the old key back in the keyring of every member that is up (none sends with it)"))
    out += [
        RejoinCall("use", OLD, KeyringGate(held_by_all=(OLD,)), KeyringGate(held_by_all=(OLD,), primary_on_all=OLD),
                   True, "every member sends with the old key, which the stragglers hold: they read the others again "
                         "and rejoin"),
        RejoinCall("install", NEW, KeyringGate(held_by_all=(OLD,), primary_on_all=OLD),
                   KeyringGate(held_by_all=(OLD, NEW), primary_on_all=OLD), False,
                   "the new key reaches the stragglers, members again"),
        RejoinCall("use", NEW, KeyringGate(held_by_all=(OLD, NEW)), KeyringGate(held_by_all=(OLD, NEW), primary_on_all=NEW),
                   False, "forward again: the new key every member's primary"),
    ]
    if old_removed:
        out.append(RejoinCall("remove", OLD, KeyringGate(held_by_all=(NEW,), primary_on_all=NEW),
                              KeyringGate(held_by_all=(NEW,), primary_on_all=NEW, held_by_none=(OLD,)), False,
                              "the old key gone again, from the stragglers too"))
    return _proven(out, old_removed)


REJOIN_ENV = "TSEGOSSIP_KEYRING_REJOIN"  # `tsegossip repair --keyring` -> synth: the stragglers, as JSON


def keyring_rejoin_stack_id(rollout: Rollout) -> str:
    """`<name>-keyring-rejoin`: the stack of `tsegossip repair --keyring` for a rotation's stragglers."""
    return f"{rollout.name}-keyring-rejoin"


def keyring_repair_stack_id(rollout: Rollout, fingerprint: str) -> str:
    """`<name>-keyring-<fingerprint[:8]>`: the stack of `tsegossip repair --keyring` (install and use of the key
    in key_env through the keyring API); stable for one key, another stack and state for another."""
    return f"{rollout.name}-keyring-{fingerprint[:8]}"
