/* poll, ppoll, select and pselect6 with sets that are partly ready. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    int p[2];
    pipe(p);
    write(p[1], "x", 1);
    write(-1, "BEGIN", 5);
    struct pollfd fds[3] = {{p[0], POLLIN | POLLPRI, 0}, {p[1], POLLOUT, 0}, {-1, POLLIN, 0}};
    poll(fds, 3, 0);
    poll(fds, 1, 10);
    struct pollfd one = {p[1], POLLIN, 0};
    poll(&one, 1, 0);
    struct timespec ts = {0, 1000};
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    ppoll(fds, 2, &ts, &m);
    ppoll(&one, 1, &ts, NULL);
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    FD_SET(0, &r);
    FD_SET(p[1], &w);
    struct timeval tv = {0, 500};
    select(p[1] + 1, &r, &w, NULL, &tv);
    FD_ZERO(&r);
    FD_SET(p[1], &r);
    tv.tv_usec = 100;
    select(p[1] + 1, &r, NULL, NULL, &tv);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    pselect(p[0] + 1, &r, NULL, NULL, &ts, &m);
    pselect(p[0] + 1, NULL, NULL, NULL, &ts, NULL);
    return 0;
}
