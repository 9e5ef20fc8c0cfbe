// SPDX-License-Identifier: GPL-2.0
/*
 * zclab's XDP program: steer the lab's UDP packets, or the segments of
 * one TCP connection of zclab's own TCP, to an AF_XDP socket, and let
 * everything else through to the kernel stack.
 *
 * It runs on the receiving interface for every packet, before the kernel
 * has allocated an skb. A packet addressed to the lab's UDP port (read
 * from the `config` map, which zclab fills) is redirected to the AF_XDP
 * socket registered in `xsks_map` for the queue it arrived on. Any other
 * packet -- ARP, ping, the TCP control connection, packets for other
 * ports -- gets XDP_PASS and continues into the normal stack.
 *
 * For zclab's TCP (af-xdp-tcp) the `tcp_config` map names the local port
 * and, for a connection this end opened, the peer's address and port: only
 * that connection's segments are redirected. Without this the kernel,
 * which owns the address but has no connection on the port, would answer
 * every one of them with a reset.
 *
 * The verifier insists that every read is proven in bounds: each header
 * is checked against data_end before it is touched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* rx queue index -> AF_XDP socket. zclab inserts its socket at its queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

/*
 * Lab packets that arrived on a queue with no socket in xsks_map, by the
 * queue (rx_queue_index): they go on to the kernel stack, which drops
 * them. On a real NIC, RSS picks the queue; this count is how a receiver
 * learns that the flow landed where it does not listen.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} unserved SEC(".maps");

/* Entry 0: the UDP destination port to steer, in host byte order. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} config SEC(".maps");

/*
 * The TCP flow to steer: segments to `local_port` (host order; 0: none),
 * from `peer_port` at `peer_addr` (an IPv4 address in its first 4 bytes
 * when `family` is 4) -- or from anyone, when `peer_port` is 0 (a port that
 * listens).
 */
struct tcp_flow {
	__u32 local_port;
	__u32 peer_port;
	__u32 family;
	__u8 peer_addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_flow);
} tcp_config SEC(".maps");

static __always_inline int same16(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* Whether a TCP segment belongs to the configured flow. */
static __always_inline int ours_tcp(struct tcphdr *tcp, const __u8 *src, int family)
{
	__u32 key = 0;
	struct tcp_flow *f = bpf_map_lookup_elem(&tcp_config, &key);
	if (!f || f->local_port == 0 || tcp->dest != bpf_htons((__u16)f->local_port))
		return 0;
	if (f->peer_port == 0)
		return 1;
	if (tcp->source != bpf_htons((__u16)f->peer_port) || f->family != (__u32)family)
		return 0;
	if (family == 4)
		return *(const __u32 *)src == *(const __u32 *)f->peer_addr;
	return same16(src, f->peer_addr);
}

/* The fixed part of an ICMP or ICMPv6 message (linux/icmp.h and icmpv6.h pull in libc's headers). */
struct icmp_fixed {
	__u8 type;
	__u8 code;
	__u16 cksum;
	__u32 rest;
};
#define ICMP4_DEST_UNREACH 3
#define ICMP6_DEST_UNREACH 1

/*
 * An ICMP (or ICMPv6) destination unreachable that quotes a segment of the
 * configured flow: the answer to a SYN that no one will take. `icmp` points
 * at the ICMP header, `inner_family` says what the quote's IP header is.
 */
static __always_inline int ours_unreachable(void *icmp, void *data_end, int family)
{
	__u32 key = 0;
	struct tcp_flow *f = bpf_map_lookup_elem(&tcp_config, &key);
	if (!f || f->local_port == 0 || f->peer_port == 0)
		return 0;
	struct tcphdr *tcp;
	if (family == 4) {
		struct icmp_fixed *h = icmp;
		if ((void *)(h + 1) > data_end || h->type != ICMP4_DEST_UNREACH)
			return 0;
		struct iphdr *in = (void *)(h + 1);
		if ((void *)(in + 1) > data_end || in->ihl != 5 || in->protocol != IPPROTO_TCP)
			return 0;
		tcp = (void *)(in + 1);
	} else {
		struct icmp_fixed *h = icmp;
		if ((void *)(h + 1) > data_end || h->type != ICMP6_DEST_UNREACH)
			return 0;
		struct ipv6hdr *in = (void *)(h + 1);
		if ((void *)(in + 1) > data_end || in->nexthdr != IPPROTO_TCP)
			return 0;
		tcp = (void *)(in + 1);
	}
	/* The quote holds at least the TCP header's first 8 bytes (RFC 792). */
	if ((void *)tcp + 8 > data_end)
		return 0;
	return tcp->source == bpf_htons((__u16)f->local_port) && tcp->dest == bpf_htons((__u16)f->peer_port);
}

/* To this queue's socket, or counted and passed when it has none. */
static __always_inline int to_socket(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks_map, &queue)) {
		__u64 *n = bpf_map_lookup_elem(&unserved, &queue);
		if (n)
			*n += 1;
		return XDP_PASS;
	}
	return bpf_redirect_map(&xsks_map, queue, XDP_PASS);
}

static __always_inline int steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	void *l4;
	__u8 proto;
	const __u8 *src;
	int family;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		/* Only plain 20-byte IPv4 headers, never fragments: the lab sends none. */
		if (ip->ihl != 5)
			return XDP_PASS;
		if (ip->protocol == IPPROTO_ICMP)
			return ours_unreachable((void *)(ip + 1), data_end, 4) ? to_socket(ctx) : XDP_PASS;
		if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
			return XDP_PASS;
		if (ip->frag_off & bpf_htons(0x3fff))
			return XDP_PASS;
		proto = ip->protocol;
		src = (const __u8 *)&ip->saddr;
		family = 4;
		l4 = (void *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		/* Right after the fixed header: the lab sends no extension headers. */
		if (ip6->nexthdr == IPPROTO_ICMPV6)
			return ours_unreachable((void *)(ip6 + 1), data_end, 6) ? to_socket(ctx) : XDP_PASS;
		if (ip6->nexthdr != IPPROTO_UDP && ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		proto = ip6->nexthdr;
		src = (const __u8 *)&ip6->saddr;
		family = 6;
		l4 = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}

	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > data_end)
			return XDP_PASS;
		return ours_tcp(tcp, src, family) ? to_socket(ctx) : XDP_PASS;
	}
	struct udphdr *udp = l4;
	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;

	__u32 *port = bpf_map_lookup_elem(&config, &key);
	if (!port || *port == 0 || udp->dest != bpf_htons((__u16)*port))
		return XDP_PASS;
	return to_socket(ctx);
}

/* For MTUs up to 3506 on veth: every packet fits one buffer. */
SEC("xdp")
int zclab_xdp(struct xdp_md *ctx)
{
	return steer(ctx);
}

/*
 * The same logic, declared frags-aware (BPF_F_XDP_HAS_FRAGS): it may see
 * multi-buffer packets, so the interface accepts MTUs up to 65535. Its
 * headers are always in the first buffer, which is all it reads.
 */
SEC("xdp.frags")
int zclab_xdp_frags(struct xdp_md *ctx)
{
	return steer(ctx);
}

char LICENSE[] SEC("license") = "GPL";
