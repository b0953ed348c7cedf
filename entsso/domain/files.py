"""Files on a node, through the suite's own Write-File and Read-File (base64 over WinRM): the change record,
the master secret backup's copy off the node and onto the other nodes. Each write is verified by the size
the node reports back."""
from __future__ import annotations

import base64
from dataclasses import dataclass

from entsso.remote.winrm import WindowsHost
from entsso.domain.errors import DomainError


class FileNotWritten(DomainError, RuntimeError):
    """The node reports another size than was written (a full disk, a filter driver)."""


@dataclass(frozen=True)
class Written:
    path: str
    size: int


def write_file(host: WindowsHost, path: str, data: bytes) -> Written:
    doc = host.invoke("Write-File", {"path": path, "content_b64": base64.b64encode(data).decode()})
    size = int(doc.get("size", -1))
    if size != len(data):
        raise FileNotWritten(f"{path} on {host.name} has {doc.get('size')} bytes after writing {len(data)}; check "
                             f"the disk of {host.name}'s backup folder")
    return Written(path, size)


def read_file(host: WindowsHost, path: str) -> bytes:
    return base64.b64decode(host.invoke("Read-File", {"path": path})["content_b64"])


def copy_file(source: WindowsHost, target: WindowsHost, path: str) -> Written:
    """The file at `path` on `source` to the same path on `target`, verified by size."""
    return write_file(target, path, read_file(source, path))
