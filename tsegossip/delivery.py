"""How a node's gossip fragment reaches the host its agent runs on: the `delivery` block of a role.

One frozen value for the three methods (local, ssh, command), read from the spec's block (schemas/
rollout.schema.json `$defs/delivery`, the single source of truth for fields and defaults) and
carried to the provider as one canonical JSON attribute, which the provider checks against the
same schema definition. Nothing here is secret: the identity is the *name* of an environment
variable holding a key file's path, the known_hosts file is a path.

Where each side effect happens, by method (README "Delivery"):
  local    the runner (the machine running tsegossip/Terraform) writes config_path and runs the
           restart command: right only when the agents run on the runner;
  ssh      the node's own host writes config_path (over SSH, content on the channel's stdin) and
           runs the restart command, over the same connection;
  command  the runner starts the operator's program, which delivers however it likes; the restart
           command then runs on the runner.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from . import schemas

SCHEMA, DEFINITION = "rollout", "delivery"


class DeliveryError(ValueError):
    """A delivery block that is not acceptable: the field, the value and what is allowed."""


class Method(enum.Enum):
    LOCAL = "local"
    SSH = "ssh"
    COMMAND = "command"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class JumpHost:
    host: str
    port: int = 22
    user: str | None = None  # None: the delivery's own user


@dataclass(frozen=True)
class Delivery:
    method: Method = Method.LOCAL
    # ssh
    host: str = "{node}"
    port: int = 22
    user: str = "root"
    identity_env: str | None = None
    known_hosts: str | None = None
    jump_host: JumpHost | None = None
    sudo: bool = False
    owner: str | None = None
    group: str | None = None
    mode: str = "0600"
    connect_timeout_seconds: int = 10
    # ssh and command
    timeout_seconds: int = 60
    # command
    command: tuple[str, ...] = ()

    # -------------------------------------------------------------- from and to the spec's block

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None, where: str = "delivery") -> Delivery:
        """A block as the spec (or the provider's attribute) holds it: validated, defaults filled."""
        if doc is None:
            return cls()
        found = schemas.def_problems(SCHEMA, DEFINITION, doc)
        if found:
            raise DeliveryError("; ".join(f"{where}.{p.path}: {p.message}" if p.path else f"{where}: {p.message}"
                                          for p in found))
        d = schemas.apply_def_defaults(SCHEMA, DEFINITION, dict(doc))
        method = Method(d["method"])
        if method is Method.LOCAL:
            return cls()
        if method is Method.COMMAND:
            return cls(method=method, command=tuple(d["command"]), timeout_seconds=int(d["timeout_seconds"]))
        jump = d.get("jump_host")
        return cls(method=method, host=d["host"], port=int(d["port"]), user=d["user"],
                   identity_env=d.get("identity_env"), known_hosts=d["known_hosts"],
                   jump_host=JumpHost(jump["host"], int(jump["port"]), jump.get("user")) if jump else None,
                   sudo=bool(d["sudo"]), owner=d.get("owner"), group=d.get("group"), mode=d["mode"],
                   connect_timeout_seconds=int(d["connect_timeout_seconds"]),
                   timeout_seconds=int(d["timeout_seconds"]))

    def to_doc(self) -> dict[str, Any]:
        """The block with every field of its method spelled out (what the plan and the state show)."""
        if self.method is Method.LOCAL:
            return {"method": "local"}
        if self.method is Method.COMMAND:
            return {"method": "command", "command": list(self.command), "timeout_seconds": self.timeout_seconds}
        doc: dict[str, Any] = {
            "method": "ssh", "host": self.host, "port": self.port, "user": self.user,
            "known_hosts": self.known_hosts, "sudo": self.sudo, "mode": self.mode,
            "connect_timeout_seconds": self.connect_timeout_seconds, "timeout_seconds": self.timeout_seconds,
        }
        for name in ("identity_env", "owner", "group"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        if self.jump_host is not None:
            doc["jump_host"] = {"host": self.jump_host.host, "port": self.jump_host.port,
                                **({"user": self.jump_host.user} if self.jump_host.user else {})}
        return doc

    def to_json(self) -> str:
        """The provider attribute's value: canonical (sorted, compact) so that a plan shows no false diff."""
        return json.dumps(self.to_doc(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None, where: str = "delivery") -> Delivery:
        if text is None or text == "":
            return cls()
        try:
            doc = json.loads(text)
        except ValueError as err:
            raise DeliveryError(f"{where}: not JSON ({err}); expected a delivery block as the rollout "
                                f"schema's $defs/delivery describes it") from None
        if not isinstance(doc, dict):
            raise DeliveryError(f"{where}: {type(doc).__name__} given; expected an object with `method`")
        return cls.from_doc(doc, where)

    # -------------------------------------------------------------- per node

    def host_for(self, node: str, http_addr: str) -> str:
        """The host to connect to for `node`: the template with {node} and {http_host} filled in."""
        http_host = urlsplit(http_addr).hostname or ""
        return self.host.replace("{node}", node).replace("{http_host}", http_host)

    def where(self) -> str:
        """One line for plans and progress: where this delivery's side effects happen."""
        if self.method is Method.LOCAL:
            return "local (on the runner)"
        if self.method is Method.COMMAND:
            shown = " ".join(self.command)
            return f"command ({shown if len(shown) <= 60 else shown[:57] + '...'} on the runner)"
        via = f" via {self.jump_host.host}" if self.jump_host else ""
        return f"ssh {self.user}@{self.host}:{self.port}{via}" + (" (sudo -n)" if self.sudo else "")
