"""labctl: a lab of real Linux VM nodes (qemu) for the netmedic.k8s collection.

The code is the package vmlab beside this file, one module per concern (vmlab/__init__.py
lists them); the commands and options are in vmlab/cli.py (`labctl --help`).

This file is the entry point lab/vm/labctl runs, and the import name other tools use:
lab/k8s/k8sctl.py (`import labctl`: log/step/LabError/run/run_command, flock, acquire_lab_lock,
exec_locked) and tests/labvm/conftest.py (loads this file: lock_holders, _ancestor_pids).
"""

import os
import sys

_HERE = os.path.dirname(os.path.realpath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from vmlab.cli import main  # noqa: E402
from vmlab.common import LabError, log, out, run, run_command, step  # noqa: E402
from vmlab.config import CACHE, LAB_LOCK, STATE  # noqa: E402
from vmlab.lock import _ancestor_pids, acquire_lab_lock, exec_locked, flock, lab_lock, lock_holders  # noqa: E402

__all__ = [
    'CACHE',
    'LAB_LOCK',
    'STATE',
    'LabError',
    '_ancestor_pids',
    'acquire_lab_lock',
    'exec_locked',
    'flock',
    'lab_lock',
    'lock_holders',
    'log',
    'main',
    'out',
    'run',
    'run_command',
    'step',
]

if __name__ == '__main__':
    sys.exit(main())
