"""Schema validation of stored objects with kubernetes-validate (non-strict, cached validators).

kubernetes-validate's own ``validate()`` re-reads ~1 MB of definitions on every call (~50 ms);
here the definitions registry and one validator per (version, kind) are built once per process.
Versions are clamped to what the package ships (1.25 ... 1.37 for kubernetes-validate 1.37.0).
Without the package installed, validation is skipped (``available()`` says so).
"""

from __future__ import annotations

import re
import threading

try:  # optional dependency
    import jsonschema
    import kubernetes_validate.utils as kv_utils
    from referencing import Registry, Resource
except ImportError:  # pragma: no cover - exercised only without the package
    kv_utils = None

_LOCK = threading.Lock()
_REGISTRIES = {}
_VALIDATORS = {}
_MISSING = object()


def available():
    return kv_utils is not None


def server_minor(version):
    """``(major, minor)`` of a gitVersion (``v1.24.9-gke.3200`` -> ``(1, 24)``), None when it is not one."""
    m = re.match(r'^v?(\d+)\.(\d+)', version or '')
    return (int(m.group(1)), int(m.group(2))) if m else None


def _minor(version):
    return server_minor(version) or (1, 37)


def schema_version(git_version):
    """The schema directory version for a server version, clamped to the shipped range."""
    shipped = sorted({_minor(v) for v in kv_utils.all_versions()})
    wanted = min(max(_minor(git_version), shipped[0]), shipped[-1])
    return '%d.%d.0' % wanted


def _validator(version, kind, api_version):
    key = (version, kind, api_version)
    with _LOCK:
        if key in _VALIDATORS:
            return _VALIDATORS[key]
        schema_dir = 'kubernetes-json-schema/v%s-local' % version
        if version not in _REGISTRIES:
            defs = kv_utils.schema_contents('%s/_definitions.json' % schema_dir, version)
            _REGISTRIES[version] = Resource.from_contents(defs) @ Registry()
        short_api = re.sub(r'^([^./]*)(?:\.[^/]*)?/', r'\1-', api_version)
        try:
            schema = kv_utils.schema_contents('%s/%s-%s.json' % (schema_dir, kind.lower(), short_api), version)
        except (FileNotFoundError, kv_utils.VersionNotSupportedError):
            _VALIDATORS[key] = _MISSING
            return _MISSING
        registry = Resource.from_contents(schema) @ _REGISTRIES[version]
        _VALIDATORS[key] = jsonschema.validators.Draft202012Validator(schema, registry=registry)
        return _VALIDATORS[key]


def validate(obj, git_version):
    """Return a list of ``(field_path, message)`` problems; empty when valid or unknown."""
    if kv_utils is None:
        return []
    validator = _validator(schema_version(git_version), obj.get('kind', ''), obj.get('apiVersion', ''))
    if validator is _MISSING:
        return []
    problems = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
        path = ''.join('[%d]' % p if isinstance(p, int) else '.%s' % p for p in error.path).lstrip('.')
        problems.append((path, error.message))
    return problems[:10]


def warm_up(git_version, kinds=(('Pod', 'v1'), ('ConfigMap', 'v1'))):
    """Build the registry and common validators ahead of the first request (optional)."""
    if kv_utils is not None:
        for kind, api_version in kinds:
            _validator(schema_version(git_version), kind, api_version)
