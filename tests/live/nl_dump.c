/* A netlink reader that asks for every next dump round at once: RTM_GETLINK dump, recv() into a
 * 32 KiB buffer until NLMSG_DONE, nothing else in between (no parsing, no output). With it the
 * time between rounds is the syscall round trip only, so a dump of many links is kernel-bound.
 * Used to record tests/data/netlink-<kernel>/kernel (see tests/data/record_netlink.py).
 *
 *   cc -O2 -o nl_dump nl_dump.c && ./nl_dump [seq]     prints "rounds=R bytes=B seq=S"
 */
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned seq = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 4243;
	int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETLINK,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = seq },
		.i = { .ifi_family = AF_UNSPEC },
	};
	static char buf[32768];
	long rounds = 0, bytes = 0;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("netlink socket");
		return 1;
	}
	if (send(fd, &req, sizeof(req), 0) < 0) {
		perror("send");
		return 1;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;
		int len;

		if (n <= 0) {
			perror("recv");
			return 1;
		}
		rounds++;
		bytes += n;
		/* NLMSG_DONE ends the last skb of the dump */
		for (h = (struct nlmsghdr *)buf, len = (int)n; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
				goto done;
	}
done:
	printf("rounds=%ld bytes=%ld seq=%u\n", rounds, bytes, seq);
	return 0;
}
