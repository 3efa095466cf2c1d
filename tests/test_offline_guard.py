"""Canaries for the offline guard: an outside connection fails at once, everywhere.

The pytest process (pytest-socket and the guard), a subprocess and a
Jupyter kernel each try to reach another machine and must fail with a
message that says the tests run offline, without waiting for a timeout;
loopback connections, which kernels and the site test need, still work.
"""

import socket
import subprocess
import sys
import threading

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

OUTSIDE = "192.0.2.1"  # TEST-NET-1: reserved for documentation, never routed
BLOCKED = "network access is blocked in the aelib tests"
REACH_OUT = ("import urllib.request\n"
             "urllib.request.urlopen('http://example.com/', timeout=60)\n")


def test_the_test_process_cannot_connect_outside():
    with pytest.raises((OSError, RuntimeError)) as info:
        socket.create_connection((OUTSIDE, 80), timeout=60)
    assert OUTSIDE in str(info.value)


def test_a_subprocess_cannot_connect_outside():
    out = subprocess.run([sys.executable, "-c", REACH_OUT], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0
    assert BLOCKED in out.stderr and "example.com:80" in out.stderr


def test_a_jupyter_kernel_cannot_connect_outside():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(REACH_OUT)])
    with pytest.raises(CellExecutionError) as info:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert BLOCKED in str(info.value)


def test_loopback_still_works_in_a_subprocess():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = threading.Thread(target=lambda: server.accept()[0].sendall(b"ok"), daemon=True)
    accepted.start()
    code = (f"import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=30); "
            f"print(s.recv(2).decode())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    server.close()
    assert out.stdout.strip() == "ok", out.stderr
