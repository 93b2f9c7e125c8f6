"""Where to reach Consul and how to say it did not answer: the client every observation goes through.

Token and TLS files come from environment variables named by `Access`, so values never sit in
a spec, a state file or a stack.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import consul

DEFAULT_TIMEOUT = 3.0


class ObserveError(RuntimeError):
    """A cluster-level observation failed; the message is meant for a person."""


@dataclass(frozen=True)
class Access:
    """Names of the environment variables holding the ACL token and TLS files (never the values)."""

    token_env: str = "CONSUL_HTTP_TOKEN"
    cacert_env: str = "CONSUL_CACERT"
    client_cert_env: str = "CONSUL_CLIENT_CERT"
    client_key_env: str = "CONSUL_CLIENT_KEY"

    @classmethod
    def from_attrs(cls, attrs: Mapping) -> Access:
        """From a resource's *_env attributes; unset ones keep Consul's conventional names."""
        d = cls()
        return cls(
            token_env=attrs.get("token_env") or d.token_env,
            cacert_env=attrs.get("cacert_env") or d.cacert_env,
            client_cert_env=attrs.get("client_cert_env") or d.client_cert_env,
            client_key_env=attrs.get("client_key_env") or d.client_key_env,
        )


DEFAULT_ACCESS = Access()


def client_for(http_addr: str, access: Access | None = None, timeout: float = DEFAULT_TIMEOUT,
               environ: Mapping[str, str] | None = None) -> consul.Consul:
    """A python-consul2 client for `http(s)://host:port` with token and TLS from the environment."""
    import consul  # on first use: the provider must start without it (see tsegossip.observe)

    access = access or DEFAULT_ACCESS
    env = os.environ if environ is None else environ
    parts = urlsplit(http_addr if "://" in http_addr else f"http://{http_addr}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ObserveError(f"http_addr {http_addr!r} is not an http(s)://host:port address")
    port = parts.port or (443 if parts.scheme == "https" else 8500)
    cacert = env.get(access.cacert_env) or None
    cert, key = env.get(access.client_cert_env) or None, env.get(access.client_key_env) or None
    return consul.Consul(
        host=parts.hostname,
        port=port,
        scheme=parts.scheme,
        token=env.get(access.token_env) or None,
        verify=cacert if cacert else True,
        cert=(cert, key) if cert and key else cert,
        timeout=timeout,
    )


# Consul's PermissionDeniedError: "Permission denied: token with AccessorID '…' lacks permission 'keyring:read'"
# (acl/errors.go), optionally followed by " on <name>".
_LACKS = re.compile(r"lacks permission '([a-z_]+):([a-z]+)'(?: on \"?([^\s\"]+)\"?)?")


def missing_rule(text: str) -> str | None:
    """The ACL policy rule (HCL) a 403 says the token lacks, or None when the text names none."""
    m = _LACKS.search(text)
    if not m:
        return None
    resource, level, name = m.groups()
    if resource in ("keyring", "operator", "acl", "mesh", "peering"):
        return f'{resource} = "{level}"'
    if name:
        return f'{resource} "{name}" {{ policy = "{level}" }} (or {resource}_prefix "" {{ policy = "{level}" }})'
    return f'{resource}_prefix "" {{ policy = "{level}" }}'


def _tls_reason(err: Exception) -> str:
    """The certificate problem inside a requests SSLError (the innermost reason OpenSSL gave)."""
    text = str(err)
    m = re.search(r"certificate verify failed: ([^)(\]'\"]+)", text)
    if m:
        return f"certificate verify failed: {m.group(1).strip()}"
    m = re.search(r"SSLError\((?:SSL[A-Za-z]*Error\()?(.*?)\)*$", text)
    return (m.group(1) if m else text)[:200]


def describe_failure(http_addr: str, err: Exception, access: Access | None = None) -> str:
    """What a person should read when the agent at http_addr did not answer as asked."""
    import consul  # on first use: the provider must start without them (see tsegossip.observe)
    import requests

    access = access or DEFAULT_ACCESS
    if isinstance(err, requests.exceptions.SSLError):  # a ConnectionError too: tell it apart first
        ca = os.environ.get(access.cacert_env)
        source = f"the CA in ${access.cacert_env} ({ca})" if ca else f"the system CAs (${access.cacert_env} is unset)"
        return f"{http_addr}: TLS handshake failed, {_tls_reason(err)}, checked against {source}"
    if isinstance(err, requests.exceptions.ConnectionError):
        return f"no answer from {http_addr} (connection refused or unreachable)"
    if isinstance(err, requests.exceptions.Timeout):
        return f"no answer from {http_addr} within the timeout"
    if isinstance(err, consul.ACLPermissionDenied):
        rule = missing_rule(str(err))
        needs = f"; the token in ${access.token_env} needs the rule {rule}" if rule else ""
        first = (str(err).strip().splitlines() or [""])[0]
        return f"{http_addr} refused the request (ACL): {first}{needs}"
    text = str(err).strip().splitlines()
    return f"{http_addr}: {type(err).__name__}: {text[0] if text else ''}"
