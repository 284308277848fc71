# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter netmedic.k8s.spec_value (documentation: spec_value.yml beside)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.validation import check_type_dict, check_type_list


def spec_value(value, kind):
    """``value`` as the argument-spec type ``kind`` (list or dict), with Ansible's own converters."""
    try:
        if kind == 'list':
            return [item.strip() for item in check_type_list(value)] if isinstance(value, str) else check_type_list(value)
        if kind == 'dict':
            return check_type_dict(value.strip() or '{}') if isinstance(value, str) else check_type_dict(value)
    except TypeError as e:
        raise AnsibleFilterError('netmedic.k8s.spec_value: %r is not a %s: %s' % (value, kind, e)) from None
    raise AnsibleFilterError('netmedic.k8s.spec_value: type must be list or dict, got %r' % (kind,))


class FilterModule(object):
    def filters(self):
        return {'spec_value': spec_value}
