"""pysyncobj, imported without its side effect: its win_inet_pton module replaces
socket.inet_ntop with a Windows-only function on every OS, which breaks netlink decoding
(pyroute2) in the same process. We put the real one back."""

import socket

_inet_ntop = socket.inet_ntop
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated  # noqa: E402

socket.inet_ntop = _inet_ntop

__all__ = ["FAIL_REASON", "SyncObj", "SyncObjConf", "SyncObjConsumer", "replicated"]
