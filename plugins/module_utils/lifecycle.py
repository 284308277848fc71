# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module lifecycle: one order of steps for every netmedic module that changes something.

``validate -> read -> plan -> report (before/after, diff) -> check-mode stop -> apply -> verify -> Result``

A module is a subclass of :class:`ModuleLifecycle` that names its catalog IDs and options and
fills in the steps; ``main()`` is ``TheModule().run()``. What the lifecycle does once for all:

- builds the ``AnsibleModule`` (check mode always supported) from the class's ``options`` plus
  the options its kind shares (``base_options``: kubernetes.core's auth for cluster modules);
- fails with ``missing_required_lib`` for a Python library that is missing, before anything;
- turns a refusal (an exception listed in ``refusals``, or :meth:`refuse`) raised by validate,
  read, plan or report into a failure that says ``nothing was changed`` with ``changed=false``; so is
  a node command that failed, is not installed or ran past its timeout there (``runner.CommandError``:
  nothing has been changed before apply);
- ends unchanged when the plan changes nothing, and in check mode before :meth:`apply`
  (``apply_in_check_mode``: the cluster edit service, whose server-side dry run is the check-mode
  stop, because its 409 loop spans dry run to write);
- runs :meth:`verify` (read back independently) after a real apply;
- holds what :meth:`held` returns (a context manager; default: nothing) from :meth:`plan` through
  :meth:`verify`, released however those steps end (a failure, the check-mode or unchanged stop),
  and only then runs :meth:`after` (work that must not hold it, such as backup retention);
- returns through :class:`Result` (one result shape, credentials masked).

Two kinds build on it: ``node/settings.SettingModule`` (a persisted kernel setting: kernel value
plus boot-time file as one transaction) and ``k8s/edit.EditModule`` (one object through the
cluster edit service).
"""

from __future__ import annotations

import contextlib

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError
from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result

NOTHING_CHANGED = 'nothing was changed'
WORKFLOWS = ['W-1', 'W-2', 'W-3', 'W-4', 'W-5', 'W-6', 'W-7']
"""The catalog IDs of the spine modules every workflow uses (``change_window``, ``cluster_lock``)."""


ALREADY_SAID = ('nothing was changed', 'nothing was read or changed')
"""Phrases that already say a refusal changed nothing (in any case)."""


def refusal_text(msg, phrase=NOTHING_CHANGED):
    """``msg`` ending in ``(<phrase>)`` unless it already says so or says one of ``ALREADY_SAID``, in any case
    ("... Nothing was changed")."""
    msg = str(msg)
    low = msg.lower()
    if phrase.lower() in low or any(said in low for said in ALREADY_SAID):
        return msg
    return '%s (%s)' % (msg, phrase)


class ModuleLifecycle(object):
    """Base class of a module; see the module docstring for the order of the steps."""

    catalog = ()
    """Catalog IDs the module implements (``catalog`` in the result)."""
    base_options = None
    """Options every module of this kind takes (a dict), before ``options``."""
    options = {}
    """The module's own argument spec."""
    module_kwargs = {}
    """More ``AnsibleModule`` keywords (``required_one_of`` ...)."""
    refusals = ()
    """Exceptions validate/read/plan raise for bad input or a state that must not be changed."""
    kind_refusals = ()
    """The same, shared by every module of a kind (``refusals`` adds the module's own)."""
    apply_in_check_mode = False
    """True when :meth:`apply` itself stops after a dry run in check mode."""
    nothing_changed = NOTHING_CHANGED
    """How a refusal says that nothing was changed (``daemonset_restart``: "nothing was restarted")."""
    refusal_carries_result = False
    """True: a refusal returns the whole result gathered so far (``catalog``, ``before``/``after``, ``backups`` and the
    module's own keys, e.g. a gate's verdict) with ``changed=false``."""

    def __init__(self):
        spec = dict(self.base_options or {})
        spec.update(self.options)
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **self.module_kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self.result = Result(self.module, self.catalog)

    # --- the steps a module fills in ----------------------------------------------------

    def requirements(self):
        """``[(available, library name, import traceback)]`` checked before any step."""
        return ()

    def validate(self):
        """Check the input (pure) before reading anything."""

    def read(self):
        """Read the current state (timeouts everywhere; an unreadable state is a refusal)."""

    def plan(self):
        """Decide what to change (pure planners in module_utils)."""

    def report(self):
        """Fill ``result`` from the plan: before/after, diff, warnings, extra keys."""

    def will_change(self):
        """Whether the plan changes anything (default: a diff was recorded)."""
        return self.result.changed

    def apply(self):
        """Make the change (backups first; undo or report what stays changed on failure)."""

    def verify(self):
        """Read the state back and fail when it is not what was planned."""

    def held(self):
        """A context manager held from :meth:`plan` through :meth:`verify` (default: nothing held).

        For a module whose plan is only valid while it holds a resource that others wait for
        (cni_ipam_gc: host-local's ``flock`` of each network, taken after :meth:`read`'s first
        runtime listing). Take it on entering and release it on leaving, whatever the exit: a
        refusal or failure inside ends the module from within the block, so only a context
        manager (never a flag) releases it. Called after :meth:`read`; keep :meth:`read` free of
        anything that may wait (a runtime listing), so the resource is held no longer than needed.
        """
        return contextlib.nullcontext()

    def after(self):
        """After the held resource is released, on every successful end (unchanged, check mode or applied):
        work that must not hold it, fills ``result`` (default: nothing)."""

    # --- the shared parts ---------------------------------------------------------------

    def refuse(self, msg, **details):
        """Fail before any change: ``changed=false``, a message that says nothing was changed (``nothing_changed``),
        ``details`` and, with ``refusal_carries_result``, the result keys gathered so far; credentials masked."""
        msg = refusal_text(msg, self.nothing_changed)
        if self.refusal_carries_result:
            self.result.changed = False
            self.result.fail(msg, **details)
        self.module.fail_json(changed=False, **self.result.masked(dict(details, msg=msg)))

    def refusal(self, error):
        """The message for a ``refusals`` exception."""
        return str(error)

    def run(self):
        for available, library, error in self.requirements():
            if not available:
                self.module.fail_json(msg=missing_required_lib(library), exception=error)
        refusals = (CommandError,) + tuple(self.kind_refusals) + tuple(self.refusals)
        try:
            self.validate()
            self.read()
        except refusals as e:
            self.refuse(self.refusal(e))
        with self.held():
            try:
                self.plan()
                self.report()
            except refusals as e:
                self.refuse(self.refusal(e))
            if self.will_change() and not (self.check_mode and not self.apply_in_check_mode):
                self.apply()
                if not self.check_mode:
                    self.verify()
        self.after()
        self.result.exit()
