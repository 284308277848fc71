# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters netmedic.k8s.diagnosis_html and netmedic.k8s.diagnosis_compare (documentation: the .yml files beside)."""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.netmedic.k8s.plugins.module_utils import diagnosis, report_html


def _plain(value, what):
    """A JSON copy of a diagnosis report (host vars hold Ansible's own wrappers); a clear error for anything else."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AnsibleFilterError('netmedic.k8s.diagnosis_html: %s must be a diagnosis report (a dict of host: '
                                 'ansible_facts.netmedic, as diagnose.json holds), got %s' % (what, type(value).__name__))
    return json.loads(json.dumps(value, default=str))


def diagnosis_html(report, before=None, title='netmedic diagnosis', generated=None):
    return report_html.diagnosis_html(_plain(report, 'the input'), before=_plain(before, 'before'),
                                      title=str(title), generated=None if generated is None else str(generated))


def diagnosis_compare(report, before):
    return diagnosis.compare(_plain(before, 'before') or {}, _plain(report, 'the input') or {})


class FilterModule(object):
    def filters(self):
        return {'diagnosis_html': diagnosis_html, 'diagnosis_compare': diagnosis_compare}
