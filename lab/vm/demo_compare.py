"""Print a before/after table of diagnose.json findings per catalog ID (used by lab/vm/demo.sh).

    python demo_compare.py BEFORE.json AFTER.json

The comparison itself is the product's (plugins/module_utils/diagnosis.py, also behind the
diagnosis HTML page and the netmedic.k8s.diagnosis_compare filter); this only prints it.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'collections'))

from ansible_collections.netmedic.k8s.plugins.module_utils import diagnosis


def main(before_path, after_path):
    with open(before_path) as before, open(after_path) as after:
        print(diagnosis.compare_text(json.load(before), json.load(after)))


if __name__ == '__main__':
    main(*sys.argv[1:3])
