"""Network views over the calls and events tables: packets (skb journeys), netlink messages.

Downstream of :class:`~ftracekit.Trace` and :mod:`ftracekit.analysis`, like :mod:`ftracekit.show`.
"""
