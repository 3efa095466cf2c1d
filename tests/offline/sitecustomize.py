"""Offline guard: no Python process of the test suite may reach another machine.

`tests/conftest.py` puts this folder first on PYTHONPATH (and `make test`
does so for the book build), so Python imports this module at start-up in
the pytest process, in every Jupyter kernel that executes a notebook and
in every subprocess. From then on a connection to any host but this one
(127.0.0.0/8, ::1, "localhost") fails at once with `NetworkBlockedError`,
before any DNS lookup, instead of hanging until a timeout or, worse,
succeeding on a machine that happens to be online. Jupyter kernels, the
site test's web server and Unix sockets all stay on this machine and keep
working.
"""

import ipaddress
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkBlockedError(ConnectionRefusedError):
    """A test tried to reach another machine."""


def _is_local(host: object) -> bool:
    if host is None or host in ("", b""):
        return True  # getaddrinfo(None, port): this machine
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost


def _refuse(host: object, port: object) -> None:
    raise NetworkBlockedError(
        f"network access is blocked in the aelib tests: a connection to {host}:{port} was "
        f"refused. Tests and notebooks run offline; read data from AELIB_DATA_DIR or use "
        f"AELIB_DATASET=digits, and fake downloads in tests (tests/offline/sitecustomize.py).")


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse(address[0], address[1])
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse(address[0], address[1])
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, port, *args, **kwargs):
    if not _is_local(host):
        _refuse(host, port)
    return _getaddrinfo(host, port, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo
GUARD_ACTIVE = True
