"""Importing superlens sets OpenMP's passive wait policy before torch loads, unless the user set one."""
import os
import subprocess
import sys


def _policy(env_policy):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    # the value OpenMP sees is the one in the environment when torch is first imported
    code = ("import builtins, os\n"
            "real = builtins.__import__\n"
            "seen = {}\n"
            "def spy(name, *a, **k):\n"
            "    if name == 'torch' and 'policy' not in seen:\n"
            "        seen['policy'] = os.environ.get('OMP_WAIT_POLICY')\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = spy\n"
            "import superlens.cli, superlens.device\n"
            "print(seen.get('policy'))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_passive_wait_policy_is_set_before_torch_loads():
    assert _policy(None) == "PASSIVE"


def test_a_users_own_policy_wins():
    assert _policy("ACTIVE") == "ACTIVE"
