"""Client-side request counting for bench_cluster_scale.py: every request the ``kubernetes`` client sends.

``install(records)`` wraps ``kubernetes.client.rest.RESTClientObject.request`` (the one place every
request of the collection's ``Cluster.call`` passes): each request appends ``{'method', 'url',
'status', 'data'}`` to ``records``; a GET's body is kept as bytes (not parsed while the step is
timed) and ``count_items`` turns it into the number of objects a list returned afterwards.

In a subprocess (``ansible-inventory``) the bench puts a ``sitecustomize.py`` first on
``PYTHONPATH`` that calls ``install_to_file(path)``: the records (items already counted) are
written there as JSON lines when the process exits. A measurement aid, not product code.
"""

from __future__ import annotations

import atexit
import json
from urllib.parse import urlsplit


def install(records):
    from kubernetes.client import rest

    original = rest.RESTClientObject.request
    if getattr(original, 'bench_records', None) is not None:
        original.bench_records.append(records)
        return
    sinks = [records]

    def request(self, method, url, *args, **kwargs):
        resp = original(self, method, url, *args, **kwargs)
        rec = {'method': method, 'url': url, 'status': getattr(resp, 'status', None), 'data': None}
        for sink in sinks:
            sink.append(rec)
        if method == 'GET':
            read = resp.read

            def keep():
                data = read()
                rec['data'] = data
                return data
            resp.read = keep
        return resp

    request.bench_records = sinks
    rest.RESTClientObject.request = request


def count_items(records):
    """Replace each record's kept body by ``items`` (objects in a list answer, else None)."""
    for rec in records:
        data, rec['items'] = rec.pop('data', None), None
        path = urlsplit(rec['url']).path
        if data and rec['method'] == 'GET' and not path.endswith('/log') and data[:1] == b'{':
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get('items'), list):
                rec['items'] = len(doc['items'])
    return records


def install_to_file(path):
    records = []
    install(records)

    def dump():
        with open(path, 'a') as fh:
            for rec in count_items(records):
                fh.write(json.dumps(rec) + '\n')
    atexit.register(dump)
