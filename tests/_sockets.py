"""Listening TCP sockets of a process tree, read from /proc (Linux), for exposure tests."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

__all__ = ["Listener", "listeners", "is_loopback"]


@dataclass(frozen=True)
class Listener:
    pid: int
    command: str
    address: str
    port: int


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(ppid, []).append(int(entry))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def _listening_by_inode() -> dict[int, tuple[str, int]]:
    found: dict[int, tuple[str, int]] = {}
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(f"/proc/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] != "0A":  # TCP_LISTEN
                continue
            hex_ip, hex_port = cols[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found[int(cols[9])] = (socket.inet_ntop(family, raw), int(hex_port, 16))
    return found


def listeners(root: int) -> list[Listener]:
    """Every listening TCP socket held by ``root`` or one of its descendants."""
    by_inode = _listening_by_inode()
    out = []
    for pid in _tree(root):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            with open(f"/proc/{pid}/cmdline") as f:
                command = f.read().replace("\0", " ").strip()[:120]
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in by_inode:
                address, port = by_inode[int(link[8:-1])]
                out.append(Listener(pid, command, address, port))
    return out


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
