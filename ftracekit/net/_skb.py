"""What an skb is called in a trace: the functions and events that free or drop it, the
contexts of the receive path, and how an address is told from a ``%p`` hash."""

from __future__ import annotations

import numpy as np

from ..errors import FtracekitError

__all__ = ["FREE_FUNCS", "DROP_FUNCS", "FREE_EVENTS", "DROP_EVENTS", "SOFTIRQ_FUNCS",
           "RX_SOFTIRQ_FUNCS", "NoPacketsError"]

#: Functions that free the skb they are given (``consume`` and drop paths alike).
FREE_FUNCS = frozenset({
    "kfree_skbmem", "__kfree_skb", "kfree_skb", "kfree_skb_reason", "sk_skb_reason_drop",
    "napi_consume_skb", "consume_skb", "__consume_stateless_skb", "skb_attempt_defer_free",
    "kfree_skb_list_reason", "__napi_kfree_skb", "dev_kfree_skb_any_reason",
    "dev_kfree_skb_irq_reason", "kfree_skb_partial"})
#: Freeing functions that are drops (they take a drop ``reason``).
DROP_FUNCS = frozenset({"kfree_skb", "kfree_skb_reason", "sk_skb_reason_drop",
                        "kfree_skb_list_reason", "dev_kfree_skb_any_reason",
                        "dev_kfree_skb_irq_reason"})
FREE_EVENTS = frozenset({"kfree_skb", "consume_skb"})
DROP_EVENTS = frozenset({"kfree_skb"})
#: A call below one of these ran in softirq context.
SOFTIRQ_FUNCS = frozenset({"handle_softirqs", "__do_softirq", "do_softirq", "net_rx_action",
                           "net_tx_action", "__napi_poll", "do_softirq_own_stack"})
#: The receive path below NET_RX: these run from the softirq (net_rx_action → a NAPI poll or
#: the backlog) whichever task it interrupted, so a call of one — typically a graph root such
#: as ip_rcv, whose softirq ancestors were not traced — is in softirq context even when the
#: line names a user task (loopback traffic is received in the sender's task, at its
#: local_bh_enable). (Not tcp_v4_do_rcv: it also runs from a socket's backlog in the task.)
RX_SOFTIRQ_FUNCS = frozenset({
    "process_backlog", "__netif_receive_skb", "__netif_receive_skb_one_core",
    "__netif_receive_skb_core", "__netif_receive_skb_list_core", "netif_receive_skb_list_internal",
    "napi_gro_receive", "gro_normal_list", "ip_rcv", "ip_list_rcv", "ipv6_rcv", "ipv6_list_rcv",
    "udp_rcv", "__udp4_lib_rcv", "udpv6_rcv", "__udp6_lib_rcv", "tcp_v4_rcv", "tcp_v6_rcv",
    "icmp_rcv", "icmpv6_rcv", "arp_rcv"})
_KERNEL_MIN = np.uint64(0xFF00000000000000)   # kernel addresses (x86-64 with 5-level paging: 0xff11…)
_HASH_MAX = np.uint64(0xFFFFFFFF)             # %p hashes keep 32 bits


class NoPacketsError(FtracekitError):
    """The trace holds no skb addresses (no funcgraph-args with skb, no skbaddr= events)."""
