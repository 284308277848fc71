"""Test runs only: keep the bytecode of the AnsiballZ zips the controller runs (issue 12: CI time).

``tests/lab/playbook_run.py`` puts this directory on ``PYTHONPATH`` of every ``ansible-playbook`` it
starts, so each module process (local connection) loads the VM lab's ``nmlab_zipcache`` (one copy:
``lab/vm/recipe/nmlab_zipcache.py`` says how and why; the guests run the same file) with the cache under
``tests/output/bytecode-cache``. zipimport compiles every module and module_utils source of a zip twice
on every run; the cache keys the compiled code on the source bytes, so a module runs exactly the code it
would have compiled. ``NMLAB_ZIPCACHE=0`` turns it off.
"""

from __future__ import annotations

import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))


def _load():
    if os.environ.get('NMLAB_ZIPCACHE', '1') == '0' or 'nmlab_zipcache' in sys.modules:
        return
    spec = importlib.util.spec_from_file_location('nmlab_zipcache', os.path.join(_ROOT, 'lab', 'vm', 'recipe', 'nmlab_zipcache.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules['nmlab_zipcache'] = module
    spec.loader.exec_module(module)
    # read when a module is first compiled, after this
    module.CACHE_DIR = os.environ.get('NMLAB_ZIPCACHE_DIR') or os.path.join(_ROOT, 'tests', 'output', 'bytecode-cache')


_load()
