"""What every executor reports about its host: platform and resources (for the scheduler)."""

from __future__ import annotations

import os
import platform

import psutil

from shoal.api.types_pb2 import NodeDescription


def describe_host() -> NodeDescription:
    desc = NodeDescription()
    desc.platform.os = "linux"
    desc.platform.architecture = platform.machine()
    desc.resources.nano_cpus = (os.cpu_count() or 1) * 1_000_000_000
    desc.resources.memory_bytes = psutil.virtual_memory().total
    return desc
