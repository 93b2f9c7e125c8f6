"""Terraform bookkeeping: update keeps the prior state on failure, delete forgets, plan, validate."""

from __future__ import annotations

import pytest
from tf.iface import DeleteContext, PlanContext, UpdateContext
from tf.types import Unknown
from tf.utils import Diagnostics

from tests.provider.tfwire import ENV, ctx, errors, client_state
from tsegossip.provider.resources import ClientConfig, PhaseGate, ServerParams


def test_update_failure_keeps_prior_state(cluster):
    cluster.nodes["web-1"].comes_back = False
    prior = client_state(cluster, ["web-1"], phase="plaintext", observed={"web-1": "plaintext"}, id="lab/x/web")
    c = ctx(UpdateContext)
    assert ClientConfig(world=cluster.world(ENV)).update(c, prior, client_state(cluster, ["web-1"])) == prior
    assert errors(c)


@pytest.mark.parametrize("kind", [ClientConfig, ServerParams, PhaseGate])
def test_delete_forgets_with_a_warning(cluster, kind):
    c = ctx(DeleteContext)
    assert kind(world=cluster.world(ENV)).delete(c, {"id": "lab/x/web", "phase": "enforced"}) is None
    (w,) = c.diagnostics.diagnostics
    assert w.severity == "warning" and "never downgrades" in w.detail
    assert cluster.commands == [] and cluster.writes == []


def test_plan_marks_observed_unknown_when_an_input_changes(cluster):
    prior = client_state(cluster, ["web-1"], id="i", phase="plaintext", observed={"web-1": "plaintext"})
    planned = dict(prior, phase="accept-encrypted")
    out = ClientConfig().plan(PlanContext(Diagnostics(), "t", changed_fields={"phase"}), prior, planned)
    assert out["observed"] is Unknown and out["id"] == "i"
    same = ClientConfig().plan(PlanContext(Diagnostics(), "t", changed_fields=set()), prior, dict(prior))
    assert same["observed"] == {"web-1": "plaintext"}


def test_validate_rejects_unknown_phase_names():
    d = Diagnostics()
    ClientConfig().validate(d, "tsegossip_client_config", {"phase": "half-encrypted", "from_phase": Unknown})
    assert [x.path for x in d.diagnostics] == [["phase"]]
