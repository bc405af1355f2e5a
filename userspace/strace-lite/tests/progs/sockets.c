/* Socket addresses of several families and socket options with their values. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(void) {
    write(-1, "BEGIN", 5);
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, "/nonexistent/sock");
    connect(u, (struct sockaddr *)&un, sizeof un);
    memset(un.sun_path, 0, sizeof un.sun_path);
    memcpy(un.sun_path, "\0abstract-test-name", 19);
    bind(u, (struct sockaddr *)&un, offsetof(struct sockaddr_un, sun_path) + 19);
    struct sockaddr_un got;
    socklen_t gl = sizeof got;
    getsockname(u, (struct sockaddr *)&got, &gl);
    int s6 = socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(9), .sin6_flowinfo = htonl(5)};
    inet_pton(AF_INET6, "::1", &a6.sin6_addr);
    connect(s6, (struct sockaddr *)&a6, sizeof a6);
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
    connect(s6, (struct sockaddr *)&a6, sizeof a6);
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl snl = {.nl_family = AF_NETLINK, .nl_pid = 0, .nl_groups = 0x5};
    bind(nl, (struct sockaddr *)&snl, sizeof snl);
    int t = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    int one = 1, v = 0;
    socklen_t vl = sizeof v;
    setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(t, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(t, IPPROTO_TCP, TCP_KEEPINTVL, &one, sizeof one);
    setsockopt(t, SOL_IP, IP_TOS, &one, sizeof one);
    setsockopt(s6, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct linger lg = {1, 5};
    setsockopt(t, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct timeval tv = {2, 500};
    setsockopt(t, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    getsockopt(t, SOL_SOCKET, SO_TYPE, &v, &vl);
    getsockopt(t, SOL_SOCKET, SO_ERROR, &v, &vl);
    getsockopt(t, SOL_SOCKET, SO_REUSEADDR, &v, &vl);
    getsockopt(t, IPPROTO_TCP, TCP_NODELAY, &v, &vl);
    getsockopt(t, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl);
    getsockopt(t, SOL_SOCKET, SO_DOMAIN, &v, &vl);
    getsockopt(t, SOL_SOCKET, SO_PROTOCOL, &v, &vl);
    vl = sizeof lg;
    getsockopt(t, SOL_SOCKET, SO_LINGER, &lg, &vl);
    getsockopt(t, SOL_SOCKET, 9999, &v, &vl);
    setsockopt(t, 9999, 1, &one, sizeof one);
    return 0;
}
