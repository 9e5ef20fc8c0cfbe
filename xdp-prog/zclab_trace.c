// SPDX-License-Identifier: GPL-2.0
/*
 * zclab's tracing programs: the kernel's own count of what a transfer did.
 *
 * Each program hangs on one kernel tracepoint (tp_btf: the tracepoint's
 * arguments arrive typed, as the kernel's own structs, described by the
 * kernel's BTF) and adds to a counter when the event belongs to the lab
 * namespace this zclab process runs in. Which namespace an event belongs
 * to comes from what the tracepoint hands over: the device (packets), the
 * socket (socket calls), or else the task it runs in (copies to user
 * memory, page cache). zclab attaches them for the timed part of one
 * transfer, reads the counters, and detaches them.
 *
 * No kprobe or fentry is used: this kernel allows neither. What no
 * tracepoint shows (veth's copy in skb_pp_cow_data, the copy into a
 * copy-mode UMEM, a pipe's copy into a file) is not counted.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* include/linux/socket.h: macros are not in BTF. */
#define MSG_ZEROCOPY 0x4000000
#define MSG_SPLICE_PAGES 0x8000000
#define MSG_PEEK 0x2
#define MSG_TRUNC 0x20

/* The counters; src/trace.rs has the same list, in the same order. */
enum counter {
	COPIED_TO_USER_BYTES,
	COPIED_TO_USER_CALLS,
	SOCKET_SENT_BYTES,
	SOCKET_SEND_CALLS,
	SOCKET_RECEIVED_BYTES,
	SOCKET_RECEIVE_CALLS,
	TCP_SENT_COPIED_BYTES,
	TCP_SENT_PAGE_REF_BYTES,
	TCP_SENT_ZEROCOPY_BYTES,
	OTHER_SENT_BYTES,
	TCP_RETRANSMITS,
	PAGE_CACHE_PAGES_ADDED,
	FILE_PAGES_ADDED,
	FILE_PAGE_FAULTS,
	DEV_XMIT_PACKETS,
	DEV_XMIT_BYTES,
	DEV_RECEIVED_PACKETS,
	DEV_RECEIVED_BYTES,
	NAPI_POLLS,
	NAPI_WORK,
	XDP_REDIRECTS,
	XDP_REDIRECT_ERRORS,
	XDP_EXCEPTIONS,
	DROPS,
	TRANSFER_DROPS,
	N_COUNTERS,
};

/* How a TCP send's bytes came (tcp_sendmsg_locked's message flags). */
enum send_kind { SENT_COPIED, SENT_PAGE_REF, SENT_ZEROCOPY };

#define N_REASONS 256

/* Written by zclab before attaching. */
struct trace_cfg {
	__u32 netns;	 /* inode number of this process's network namespace */
	__u32 data_ip;	 /* the transfer's data packets go to this IPv4 address (network order; 0: none) */
	__u32 data_port; /* ... and this UDP port (host order) */
	__u32 file_ino_lo; /* the transfer's file (the source, or the output): its inode number */
	__u32 file_ino_hi;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trace_cfg);
} trace_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, N_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Drops by reason: [0, N_REASONS) in this namespace, [N_REASONS, 2 N_REASONS) of the transfer's packets anywhere. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * N_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drop_reasons SEC(".maps");

/* The kind of the TCP send a thread is in, from tcp_sendmsg_locked until
 * sock_send_length: storage that hangs off the task itself (cheap to find). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} send_kind SEC(".maps");

#define NO_SEND 0xffffffff

static __always_inline struct trace_cfg *trace_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&trace_config, &zero);
}

static __always_inline void add(__u32 counter, __u64 value)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &counter);
	if (c)
		*c += value;
}

/*
 * The namespace of a device, a socket, the current task. tp_btf arguments
 * are typed kernel pointers, so the program follows them with plain loads
 * (the verifier makes each load fault-safe; vmlinux.h marks every struct
 * preserve_access_index, so the offsets are fixed up for the running
 * kernel). Much cheaper than a bpf_probe_read_kernel per field.
 */
static __always_inline __u32 ns_of_dev(const struct net_device *dev)
{
	return dev ? dev->nd_net.net->ns.inum : 0;
}

static __always_inline __u32 ns_of_sock(const struct sock *sk)
{
	return sk ? sk->__sk_common.skc_net.net->ns.inum : 0;
}

static __always_inline __u32 ns_of_task(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return t->nsproxy ? t->nsproxy->net_ns->ns.inum : 0;
}

static __always_inline int ours(__u32 ns)
{
	struct trace_cfg *c = trace_cfg();
	return c && ns && ns == c->netns;
}

/*
 * Whether an skb carries UDP: the IPv4 protocol or the IPv6 next header at
 * the network header. One byte read from the packet, fault-safe.
 */
static __always_inline int is_udp(const struct sk_buff *skb)
{
	const unsigned char *nh = skb->head + skb->network_header;
	__u8 proto = 0;

	if (skb->protocol == bpf_htons(0x0800))
		bpf_probe_read_kernel(&proto, 1, nh + 9);
	else if (skb->protocol == bpf_htons(0x86DD))
		bpf_probe_read_kernel(&proto, 1, nh + 6);
	return proto == IPPROTO_UDP;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(zct_copy_to_user, const struct sk_buff *skb, int len)
{
	/*
	 * The copy runs in the receiving process, inside recvmsg/read. UDP is
	 * counted in zct_sock_recv instead: udp_recvmsg copies a linear skb
	 * (every small datagram) with copy_linear_skb, which has no tracepoint,
	 * and only a non-linear one (a GRO or GSO batch) through here.
	 */
	if (len > 0 && ours(ns_of_task()) && !is_udp(skb)) {
		add(COPIED_TO_USER_BYTES, len);
		add(COPIED_TO_USER_CALLS, 1);
	}
	return 0;
}

SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(zct_tcp_sendmsg, const struct sock *sk, const struct msghdr *msg, const struct sk_buff *skb, int size_goal)
{
	if (!ours(ns_of_sock(sk)))
		return 0;
	/* It fires once per skb a send fills, so only remember the kind here;
	 * sock_send_length, once per call, counts the bytes. */
	__u32 flags = msg->msg_flags;
	__u32 *kind = bpf_task_storage_get(&send_kind, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (kind)
		*kind = (flags & MSG_SPLICE_PAGES) ? SENT_PAGE_REF : (flags & MSG_ZEROCOPY) ? SENT_ZEROCOPY : SENT_COPIED;
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(zct_sock_send, struct sock *sk, int ret, int flags)
{
	if (ret <= 0 || !ours(ns_of_sock(sk)))
		return 0;
	add(SOCKET_SENT_BYTES, ret);
	add(SOCKET_SEND_CALLS, 1);
	__u32 *kind = bpf_task_storage_get(&send_kind, bpf_get_current_task_btf(), 0, 0);
	if (kind && *kind <= SENT_ZEROCOPY) {
		add(TCP_SENT_COPIED_BYTES + *kind, ret);
		*kind = NO_SEND;
	} else {
		/* Not TCP (UDP, say): sendmsg copies from user memory. */
		add(OTHER_SENT_BYTES, ret);
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(zct_sock_recv, struct sock *sk, int ret, int flags)
{
	if (ret > 0 && ours(ns_of_sock(sk))) {
		add(SOCKET_RECEIVED_BYTES, ret);
		add(SOCKET_RECEIVE_CALLS, 1);
		/*
		 * A UDP receive copies every byte it returns into user memory,
		 * by whichever route (copy_linear_skb, skb_copy_datagram_msg, or
		 * with the checksum): count them here, once. Not MSG_PEEK (the
		 * bytes are copied again later) nor MSG_TRUNC (ret is then the
		 * datagram's length, not what was copied).
		 */
		if (sk->sk_protocol == IPPROTO_UDP && !(flags & (MSG_PEEK | MSG_TRUNC))) {
			add(COPIED_TO_USER_BYTES, ret);
			add(COPIED_TO_USER_CALLS, 1);
		}
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(zct_tcp_retransmit, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (ours(ns_of_sock(sk)))
		add(TCP_RETRANSMITS, 1);
	return 0;
}

SEC("tp_btf/mm_filemap_add_to_page_cache")
int BPF_PROG(zct_page_cache_add, struct folio *folio)
{
	if (!ours(ns_of_task()))
		return 0;
	/* A folio is 1 page, or 2^order pages when it is large (PG_head set). */
	unsigned long flags = folio->flags.f;
	__u64 pages = 1;
	if (flags & (1UL << bpf_core_enum_value(enum pageflags, PG_head)))
		pages = 1ULL << (folio->_flags_1 & 0xff);
	add(PAGE_CACHE_PAGES_ADDED, pages);
	struct trace_cfg *c = trace_cfg();
	__u64 ino = folio->mapping ? folio->mapping->host->i_ino : 0;
	if (c && ino && ino == (((__u64)c->file_ino_hi << 32) | c->file_ino_lo))
		add(FILE_PAGES_ADDED, pages);
	return 0;
}

SEC("tp_btf/mm_filemap_fault")
int BPF_PROG(zct_file_fault, struct address_space *mapping, unsigned long index)
{
	if (ours(ns_of_task()))
		add(FILE_PAGE_FAULTS, 1);
	return 0;
}

SEC("tp_btf/net_dev_xmit")
int BPF_PROG(zct_dev_xmit, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	if (rc == 0 && ours(ns_of_dev(dev))) {
		add(DEV_XMIT_PACKETS, 1);
		add(DEV_XMIT_BYTES, len);
	}
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(zct_dev_receive, struct sk_buff *skb)
{
	if (ours(ns_of_dev(skb->dev))) {
		add(DEV_RECEIVED_PACKETS, 1);
		add(DEV_RECEIVED_BYTES, skb->len);
	}
	return 0;
}

SEC("tp_btf/napi_poll")
int BPF_PROG(zct_napi_poll, struct napi_struct *napi, int work, int budget)
{
	if (ours(ns_of_dev(napi->dev))) {
		add(NAPI_POLLS, 1);
		add(NAPI_WORK, work);
	}
	return 0;
}

SEC("tp_btf/xdp_redirect")
int BPF_PROG(zct_xdp_redirect, const struct net_device *dev, const struct bpf_prog *xdp, const void *tgt, int err,
	     enum bpf_map_type map_type, u32 map_id, u32 index)
{
	if (ours(ns_of_dev(dev)))
		add(XDP_REDIRECTS, 1);
	return 0;
}

SEC("tp_btf/xdp_redirect_err")
int BPF_PROG(zct_xdp_redirect_err, const struct net_device *dev, const struct bpf_prog *xdp, const void *tgt, int err,
	     enum bpf_map_type map_type, u32 map_id, u32 index)
{
	if (ours(ns_of_dev(dev)))
		add(XDP_REDIRECT_ERRORS, 1);
	return 0;
}

SEC("tp_btf/xdp_exception")
int BPF_PROG(zct_xdp_exception, const struct net_device *dev, const struct bpf_prog *xdp, u32 act)
{
	if (ours(ns_of_dev(dev)))
		add(XDP_EXCEPTIONS, 1);
	return 0;
}

/* True if the skb is one of the transfer's data packets: IPv4, UDP, to the data address and port. */
static __always_inline int is_transfer_packet(struct sk_buff *skb, struct trace_cfg *c)
{
	if (!c->data_ip || !c->data_port)
		return 0;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (!head || nh == (__u16)~0U)
		return 0;
	struct iphdr ip;
	if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
		return 0;
	if (ip.version != 4 || ip.protocol != IPPROTO_UDP || ip.daddr != c->data_ip)
		return 0;
	struct udphdr udp;
	if (bpf_probe_read_kernel(&udp, sizeof(udp), head + nh + ip.ihl * 4))
		return 0;
	return udp.dest == bpf_htons(c->data_port);
}

static __always_inline void count_reason(__u32 base, __u32 reason)
{
	__u32 key = base + (reason < N_REASONS ? reason : N_REASONS - 1);
	__u64 *c = bpf_map_lookup_elem(&drop_reasons, &key);
	if (c)
		*c += 1;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(zct_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
{
	struct trace_cfg *c = trace_cfg();
	if (!c)
		return 0;
	/* Whose drop is it: the device's namespace, else the socket's, else the task's. */
	__u32 ns = ns_of_dev(skb->dev);
	if (!ns)
		ns = ns_of_sock(skb->sk);
	if (!ns)
		ns = ns_of_sock(rx_sk);
	if (!ns)
		ns = ns_of_task();
	if (ns && ns == c->netns) {
		add(DROPS, 1);
		count_reason(0, reason);
	}
	/* The transfer's own packets are followed into any namespace (a router's, say). */
	if (is_transfer_packet(skb, c)) {
		add(TRANSFER_DROPS, 1);
		count_reason(N_REASONS, reason);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
