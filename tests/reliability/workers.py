"""What each gunicorn worker did and holds, read from outside: its metrics file, its sockets."""

import json
import os
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict


def per_worker(metrics_dir: Path, metric: str, **labels: str) -> dict[int, float]:
    """Per worker pid, the sum of ``metric``'s samples with these labels, from prometheus_client's
    multiprocess files (one per process and kind), so each worker is seen on its own. ``metric``
    is the family's name (a counter's without ``_total``)."""
    found: dict[int, float] = {}
    for path in metrics_dir.glob("*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            name, _, sample_labels, _ = json.loads(key)
            if name == metric and all(sample_labels.get(k) == v for k, v in labels.items()):
                found[pid] = found.get(pid, 0.0) + value
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


ESTABLISHED = "01"


def holder_of_port(pids: list[int], local_port: int) -> int:
    """Which of ``pids`` owns the open TCP connection whose local end is ``local_port`` (IPv4).
    (An earlier connection from the same port may linger in TIME_WAIT, owned by nobody.)"""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == local_port and fields[3] == ESTABLISHED and fields[9] != "0":
            inodes.add(fields[9])
    assert inodes, f"no open TCP connection from port {local_port}"
    holders = [pid for pid in pids if inodes & _socket_inodes(pid)]
    assert len(holders) == 1, f"port {local_port} is held by {holders} of {pids}"
    return holders[0]
