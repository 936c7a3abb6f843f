"""Offline guard: refuse every network connection except to this machine (loopback).

The course must run without a network. The course runner proves it: its kernels start with this
file on their PYTHONPATH as ``sitecustomize.py`` (Python imports that at start-up, before any cell
runs; see `ptm_lib.course`), so a notebook that tries to download fails at once with
"network access is disabled", instead of hanging or quietly depending on the internet.
Loopback stays open: the kernel talks to Jupyter over 127.0.0.1.

In-process (tests): ``with network_disabled(): ...``.

Only the standard library is imported here: as sitecustomize this runs in every Python process the
kernel starts (worker processes too), before torch or ptm_lib are imported.
"""
from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from typing import Callable

__all__ = ["disable_network", "network_disabled"]

_LOOPBACK_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _ip(host):
    try:
        return ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return None


def _is_loopback(host) -> bool:
    """True for this machine: None or "" (a local bind), "localhost", 127.0.0.0/8, ::1."""
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host is None or str(host).lower() in _LOOPBACK_NAMES:
        return True
    ip = _ip(host)
    return ip is not None and (ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback))


def _needs_no_dns(host) -> bool:
    """A look-up that sends nothing: loopback, or an address written as numbers (connecting to a
    non-loopback one is refused by `connect`)."""
    return _is_loopback(host) or _ip(host.decode(errors="replace") if isinstance(host, bytes) else host) is not None


def _refuse(what: str):
    return PermissionError(errno.EACCES, f"network access is disabled (ptm_lib.offline): refused to {what}. "
                                         "The course runs offline; anything it needs ships with it.")


def _guard(real, target, describe, allowed=_is_loopback):
    """`real`, refusing calls whose `target(*args)` host is not `allowed`."""
    def guarded(*args, **kwargs):
        host = target(*args, **kwargs)
        if not allowed(host):
            raise _refuse(describe(host))
        return real(*args, **kwargs)
    guarded.__wrapped__ = real
    return guarded


def _socket_host(sock, address, *rest):
    """The host a socket method targets; None for Unix sockets (always allowed)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        return address[0]
    return None


def _sendto_host(sock, data, *rest):
    return _socket_host(sock, rest[-1]) if rest else None


def disable_network() -> Callable[[], None]:
    """Refuse connections and name look-ups for anything but loopback in this process; returns a
    function that undoes it."""
    patches = [
        (socket.socket, "connect", _guard(socket.socket.connect, _socket_host, lambda h: f"connect to {h}")),
        (socket.socket, "connect_ex", _guard(socket.socket.connect_ex, _socket_host, lambda h: f"connect to {h}")),
        (socket.socket, "sendto", _guard(socket.socket.sendto, _sendto_host, lambda h: f"send to {h}")),
        (socket, "getaddrinfo", _guard(socket.getaddrinfo, lambda host, *a, **k: host, lambda h: f"look up {h!r}",
                                       _needs_no_dns)),
        (socket, "gethostbyname", _guard(socket.gethostbyname, lambda host: host, lambda h: f"look up {h!r}",
                                         _needs_no_dns)),
        (socket, "gethostbyname_ex", _guard(socket.gethostbyname_ex, lambda host: host, lambda h: f"look up {h!r}",
                                            _needs_no_dns)),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)

    def undo():
        for owner, name, original in saved:
            setattr(owner, name, original)
    return undo


@contextlib.contextmanager
def network_disabled():
    """``with network_disabled():`` -- no network but loopback inside the block."""
    undo = disable_network()
    try:
        yield
    finally:
        undo()


if __name__ == "sitecustomize":   # copied onto a kernel's PYTHONPATH by the course runner
    disable_network()
