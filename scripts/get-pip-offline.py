"""Offline stand-in for the get-pip.py bootstrap that ansible-test downloads.

ansible-test (``--venv``) creates each sanity virtualenv without pip and then
runs ``~/.ansible/test/cache/get_pip_<pip version with _>.py`` (for
ansible-core 2.21: ``get_pip_25_2.py``), downloading it from
ci-files.testing.ansible.com when that file is missing. That host is not
reachable here, so scripts/sanity.sh copies this file to that name.

Invocation (via ansible_test/_util/target/setup/quiet_pip.py, run in-process
with runpy): ``<venv python> get_pip_X_Y.py --disable-pip-version-check
pip==X.Y --no-setuptools --no-wheel``.

What it does: installs the pip wheel bundled with CPython (ensurepip, no
network), then tries to move to the exact pip version requested (a package
index is needed for the sanity requirements anyway). If that second step
fails, the bundled pip stays: ansible-test uninstalls pip again at the end.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys


def main() -> int:
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    # ensurepip.bootstrap() sets PIP_CONFIG_FILE=/dev/null and drops PIP_* in
    # os.environ; the follow-up pip must see the machine's pip config again
    # (e.g. `cert =` for a TLS-intercepting proxy: pip < 24.2 has no truststore).
    env = dict(os.environ)
    ensurepip.bootstrap(upgrade=True, default_pip=True)
    if args:
        cmd = [sys.executable, '-m', 'pip', 'install', '--upgrade', *args]
        rc = subprocess.call(cmd, env=env)
        if rc != 0:
            print(f'get-pip stand-in: {" ".join(args)} failed (rc={rc}); keeping the bundled pip', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
