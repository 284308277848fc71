# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The same connection options and K8S_AUTH_* variables as kubernetes.core, so an
    # inventory or AWX credential written for kubernetes.core works unchanged.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig content as a dictionary.
      - Without it (and without O(host)) the in-cluster service account is used when the module runs
        in a pod, else C(~/.kube/config).
      - Can also be set with E(K8S_AUTH_KUBECONFIG).
      - Never logged to syslog (it is C(no_log)); in task results only the credentials of an inline kubeconfig
        (C(token), C(client-key-data), C(password), ...) are masked, the rest (and a path) stays readable.
    type: raw
  context:
    description:
      - The kubeconfig context to use. Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - The Kubernetes API URL. Can also be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - A bearer token for the API. Can also be set with E(K8S_AUTH_API_KEY). Never logged.
    type: str
  username:
    description:
      - User name for basic authentication. Can also be set with E(K8S_AUTH_USERNAME).
    type: str
  password:
    description:
      - Password for basic authentication. Can also be set with E(K8S_AUTH_PASSWORD). Never logged.
    type: str
  client_cert:
    description:
      - Path to a client certificate file. Can also be set with E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the client certificate's key file. Can also be set with E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  ca_cert:
    description:
      - Path to a CA bundle to verify the API server with. Can also be set with E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. Can also be set with E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  proxy:
    description:
      - An HTTP proxy URL for API requests. Can also be set with E(K8S_AUTH_PROXY).
    type: str
  no_proxy:
    description:
      - Comma-separated hosts/domains/IPs/CIDRs that bypass O(proxy). Can also be set with E(K8S_AUTH_NO_PROXY).
    type: str
  impersonate_user:
    description:
      - User to impersonate. Can also be set with E(K8S_AUTH_IMPERSONATE_USER).
    type: str
  impersonate_groups:
    description:
      - Groups to impersonate. Can also be set with E(K8S_AUTH_IMPERSONATE_GROUPS) (comma separated).
    type: list
    elements: str
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
  - kubernetes >= 24.2.0 (the official Python client), on the host that runs the module (usually the controller)
notes:
  - >-
    Run cluster modules on the controller (C(delegate_to: localhost) or a play on localhost) with an
    interpreter that has the C(kubernetes) package; netmedic's venv has it.
"""
