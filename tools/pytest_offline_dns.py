"""Resolve example.com for pygeoapi's tests on a machine without DNS.

pygeoapi 0.23.3 and later check a job's subscriber URLs with
``pygeoapi.util.is_request_allowed``, which resolves the host name with
``socket.gethostbyname`` and rejects private addresses. Their
``test_execute_process`` subscribes ``https://example.com/...`` URLs and
mocks ``requests.post``, so nothing is sent, but the name lookup still
needs DNS. On a machine without DNS it fails with ``socket.gaierror``
whatever the process manager is.

Loaded with ``python -m pytest -p pytest_offline_dns`` (this folder on
``PYTHONPATH``), the plugin makes ``socket.gethostbyname`` and
``socket.getaddrinfo`` return ``93.184.215.14`` for ``example.com``, an
address that name had in 2024. It is a global address, so
``is_request_allowed`` accepts it as it would accept the real one. The
documentation ranges of RFC 5737 do not work here, because Python's
``ipaddress`` counts them as private. Every other name goes to the real
resolver unchanged.
"""

import socket

HOST_NAME = 'example.com'
HOST_ADDRESS = '93.184.215.14'

_real_gethostbyname = socket.gethostbyname
_real_getaddrinfo = socket.getaddrinfo


def _is_example_com(host):
    if isinstance(host, bytes):
        host = host.decode('ascii', 'replace')
    return isinstance(host, str) and host.rstrip('.').lower() == HOST_NAME


def gethostbyname(hostname):
    """Return the fixed address for example.com, else resolve `hostname`."""

    if _is_example_com(hostname):
        return HOST_ADDRESS
    return _real_gethostbyname(hostname)


def getaddrinfo(host, port, *args, **kwargs):
    """Resolve example.com as its fixed address, any other host as usual."""

    if _is_example_com(host):
        host = HOST_ADDRESS
    return _real_getaddrinfo(host, port, *args, **kwargs)


def pytest_configure(config):
    socket.gethostbyname = gethostbyname
    socket.getaddrinfo = getaddrinfo


def pytest_unconfigure(config):
    socket.gethostbyname = _real_gethostbyname
    socket.getaddrinfo = _real_getaddrinfo
