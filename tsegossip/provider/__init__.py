"""The tsegossip Terraform provider, one job per module.

provider.py and schema.py serve the plugin; resources.py is the boundary where Terraform's dicts
become typed state (state.py) and back. Behind it: rollout.py moves agents batch by batch,
tse_servers.py waits for TSE and its servers, gate.py checks a cluster against the plan,
refusals.py holds the checks that stop a step before anything is touched, live.py reads the
cluster, world.py holds every effect (replaceable in tests) and progress.py reports to the operator.
"""
