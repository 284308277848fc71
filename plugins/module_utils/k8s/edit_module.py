# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module kinds that change the cluster, on the module lifecycle (``module_utils/lifecycle.py``).

:class:`ClusterModule`: kubernetes.core's auth options, the ``kubernetes`` library check and an
API error as a refusal before any change (``kube_proxy_config``, which edits several ConfigMaps
and dry-runs all of them before it writes any).

:class:`EditModule` (``flannel_config``, ``terway_config``, ``ip_masq_agent``): one object through
the cluster edit service (``k8s/edit.py``): the read and plan through :func:`edit.prepare`, and the apply
through :func:`edit.run` - server-side dry run (check mode stops there), backup at the read's
``resourceVersion``, write with that precondition, read back - with one 409 loop. A subclass
gives the planner and :meth:`EditModule.describe_state` (the diff and the result entry for an
edit state, called again after a 409 re-planned it).
"""

from __future__ import annotations

from ansible_collections.netmedic.k8s.plugins.module_utils import lifecycle
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit


class ClusterModule(lifecycle.ModuleLifecycle):
    """A module that talks to the cluster: kubernetes.core's auth options and the ``kubernetes`` library."""

    base_options = k8s_client.AUTH_ARG_SPEC
    kind_refusals = (k8s_client.K8sError,)

    def requirements(self):
        return [(k8s_client.HAS_K8S, 'kubernetes', k8s_client.K8S_IMPORT_ERROR)]

    def refusal(self, error):
        return error.msg if isinstance(error, k8s_client.K8sError) else str(error)


class EditModule(ClusterModule):
    """One ConfigMap or DaemonSet ``namespace/name`` (options ``name``, ``namespace``, ``backup``)."""

    kind = 'ConfigMap'
    apply_in_check_mode = True

    def __init__(self):
        ClusterModule.__init__(self)
        self.where = '%s/%s' % (self.params['namespace'], self.params['name'])
        self.step = None
        self.state = None
        self.cluster = None

    # --- what a subclass gives --------------------------------------------------------

    def planner(self, obj):
        """``planner(obj) -> (new_obj, changes)`` for ``edit.prepare``/``edit.run``."""
        raise NotImplementedError

    def create_from(self):
        """The object to plan from when it does not exist (None: a missing object is refused)."""
        return None

    def read_more(self):
        """Other reads after the object (DaemonSets to restart ...)."""

    def describe_state(self, state):
        """Diff and result entry (``result.extra``) for an edit state; returns the entry."""
        raise NotImplementedError

    def describe_backup(self, obj):
        """Extra keys of the backup entry in ``backups`` (the replaced object's data)."""
        return {'data': dict(obj.get('data') or {})}

    def summary(self, obj):
        """The reported ``after`` of the stored object."""
        raise NotImplementedError

    def applied(self, state):
        """After the edit service ran (also in check mode)."""
        if not state['changed']:
            self.result.extra['restart_needed'] = []

    # --- the lifecycle steps ----------------------------------------------------------

    def validate(self):
        self.step = 'validate'

    def read(self):
        self.step = 'read'
        p = self.params
        self.cluster = k8s_client.Cluster(p)
        self.state = edit.prepare(self.cluster, self.kind, p['namespace'], p['name'], self.planner, create=self.create_from())
        self.read_more()

    def refusal(self, error):
        if isinstance(error, k8s_client.K8sError):
            return error.msg
        if self.step == 'validate':
            return 'invalid settings: %s' % error
        return '%s %s: %s' % (self.kind, self.where, error)

    def report(self):
        self.describe_state(self.state)

    def will_change(self):
        return bool(self.state['changes'])

    def apply(self):
        result = self.result
        try:
            self.state = state = edit.run(self.cluster, self.state, self.planner, check_mode=self.check_mode,
                                          backup=self.params['backup'], backups=result.backups, describe=self.describe_backup)
        except edit.EditFailed as e:
            result.changed = e.changed
            result.fail(e.msg)
        self.entry = self.describe_state(state)
        result.changed = state['changed']
        self.applied(state)

    def verify(self):
        """``edit.run`` read the object back and checked it; the result reports what is stored."""
        state = self.state
        if state['changed']:
            self.entry['after'] = self.result.after = self.summary(state['stored'])
            self.entry['resource_version'] = state['stored']['metadata'].get('resourceVersion')
