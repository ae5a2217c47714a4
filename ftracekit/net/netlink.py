"""Netlink messages and the kernel calls that handled them (issue 12).

(placeholder: joins and dumps follow)
"""
from __future__ import annotations

from ._nlmsg import PcapTruncatedWarning, read_pcap

__all__ = ["read_pcap", "PcapTruncatedWarning"]
