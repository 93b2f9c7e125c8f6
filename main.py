#!/usr/bin/env python
"""CDKTF app: one Terraform stack per planned step of the rollout in $TSEGOSSIP_SPEC.

Wiring only (tsegossip/app.py). Run with `python main.py` or `cdktf synth` (cdktf.json points here).
The gossip key is read from the environment variable the spec names, and only its
fingerprint reaches the synthesized configuration.
"""

from __future__ import annotations

import sys

from tsegossip.app import main

DEFAULT_SPEC = "examples/tse-smooth.yaml"

if __name__ == "__main__":
    sys.exit(main(DEFAULT_SPEC))
