# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Only what netmedic adds to kubernetes.core's connection options: the modules also extend
    # kubernetes.core.k8s_auth_options (the options, their K8S_AUTH_* variables and the client
    # configuration are kubernetes.core's own), so an inventory, module_defaults or AWX credential
    # written for kubernetes.core works unchanged.
    DOCUMENTATION = r"""
options:
  request_timeout:
    description:
      - Seconds every single request to the API server may take (connect, send, answer), above 0 and at most 3600.
        A request that gets no answer in time fails the module cleanly (issue 10 hole 9); it is never retried.
    type: float
    default: 30
  request_retries:
    description:
      - How many times a request answered with HTTP 429 (any verb; the server did not process it) or 5xx (reads
        only; a write might have landed) is retried, 0 to 10. The pause doubles from 0.5 s up to 30 s with random
        jitter (between half and all of it) and is never shorter than the server's C(Retry-After); a C(Retry-After)
        longer than 60 s fails at once. Other errors, and timeouts, are not retried.
    type: int
    default: 3
requirements:
  - the C(kubernetes.core) collection (6.x), whose auth options and client configuration are used
  - kubernetes >= 24.2.0 (the official Python client), on the host that runs the module (usually the controller)
notes:
  - >-
    The connection options (O(kubeconfig), O(context), O(host), O(api_key), ..., O(proxy_headers), O(persist_config),
    O(impersonate_user), O(impersonate_groups)) and their C(K8S_AUTH_*) variables are those of C(kubernetes.core),
    read by its own code. An explicit O(api_key) (or O(username)/O(password)) replaces the kubeconfig's credentials,
    including a token refresh hook and a client certificate (unless O(client_cert) is given too): the module runs
    as that identity only.
  - >-
    O(kubeconfig) is never logged to syslog (it is C(no_log)); in task results only the credentials of an inline
    kubeconfig (C(token), C(client-key-data), C(password), ...) are masked, the rest (and a path) stays readable.
  - >-
    Run cluster modules on the controller (C(delegate_to: localhost) or a play on localhost) with an
    interpreter that has the C(kubernetes) package; netmedic's venv has it.
"""
