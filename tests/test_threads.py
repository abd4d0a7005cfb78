"""OMP_WAIT_POLICY defaults to PASSIVE before torch loads (importing the package or running the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import hhrnet_rt, os, sys; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"


def _probe(env_policy):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_import_sets_passive_before_torch():
    policy, torch_loaded = _probe(None)
    assert policy == "PASSIVE"
    assert torch_loaded == "False"  # so libgomp, loaded later with torch, reads it


def test_user_setting_is_kept():
    assert _probe("ACTIVE")[0] == "ACTIVE"
