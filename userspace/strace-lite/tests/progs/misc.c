/* epoll_pwait2, sendmmsg/recvmmsg, terminal and socket ioctls, mount calls,
   seccomp, bpf, perf_event_open, io_uring_setup and fanotify_init. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    write(-1, "BEGIN", 5);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev[2];
    struct timespec ts = {0, 1000};
    syscall(SYS_epoll_pwait2, ep, ev, 2, &ts, NULL, 8);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    struct timespec zero = {0, 0};
    syscall(SYS_epoll_pwait2, ep, ev, 2, &zero, &m, 8);
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    char a[] = "one", b[] = "two";
    struct iovec ia = {a, 3}, ib = {b, 3};
    struct mmsghdr mm[2];
    memset(mm, 0, sizeof mm);
    mm[0].msg_hdr.msg_iov = &ia;
    mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &ib;
    mm[1].msg_hdr.msg_iovlen = 1;
    sendmmsg(sv[0], mm, 2, 0);
    char ra[8], rb[8];
    struct iovec ra_iov = {ra, sizeof ra}, rb_iov = {rb, sizeof rb};
    struct mmsghdr rm[2];
    memset(rm, 0, sizeof rm);
    rm[0].msg_hdr.msg_iov = &ra_iov;
    rm[0].msg_hdr.msg_iovlen = 1;
    rm[1].msg_hdr.msg_iov = &rb_iov;
    rm[1].msg_hdr.msg_iovlen = 1;
    recvmmsg(sv[1], rm, 2, MSG_DONTWAIT, NULL);
    int n;
    ioctl(sv[1], FIONREAD, &n);
    struct termios t;
    ioctl(sv[0], TCGETS, &t);
    int pt = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    if (pt >= 0) {
        ioctl(pt, TCGETS, &t);
        struct winsize w = {24, 80, 0, 0};
        ioctl(pt, TIOCSWINSZ, &w);
        ioctl(pt, TIOCGWINSZ, &w);
        int unlock = 0;
        ioctl(pt, TIOCSPTLCK, &unlock);
    }
    unsigned long long sz;
    ioctl(sv[0], BLKGETSIZE64, &sz);
    ioctl(sv[0], FIONBIO, &n);
    mount("none", "/nonexistent", "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=1m");
    mount(NULL, "/nonexistent", NULL, MS_REMOUNT | MS_BIND, NULL);
    umount2("/nonexistent", MNT_DETACH | UMOUNT_NOFOLLOW);
    syscall(SYS_pivot_root, "/nonexistent", "/nonexistent/old");
    unsigned action = SECCOMP_RET_KILL_PROCESS;
    syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
    syscall(SYS_seccomp, 99, 0, NULL);
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    syscall(SYS_bpf, BPF_MAP_CREATE, &attr, 0);
    syscall(SYS_bpf, BPF_PROG_LOAD, NULL, 0);
    struct perf_event_attr pa;
    memset(&pa, 0, sizeof pa);
    pa.type = PERF_TYPE_SOFTWARE;
    pa.size = sizeof pa;
    pa.config = PERF_COUNT_SW_TASK_CLOCK;
    pa.disabled = 1;
    syscall(SYS_perf_event_open, &pa, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    struct io_uring_params up;
    memset(&up, 0, sizeof up);
    syscall(SYS_io_uring_setup, 0, &up);
    memset(&up, 0, sizeof up);
    int ring = syscall(SYS_io_uring_setup, 4, &up);
    syscall(SYS_io_uring_enter, ring, 0, 0, 0, NULL, 0);
    syscall(SYS_io_uring_enter, -1, 1, 0, IORING_ENTER_GETEVENTS, NULL, 0);
    syscall(SYS_io_uring_register, -1, IORING_REGISTER_BUFFERS, NULL, 0);
    fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE);
    fanotify_mark(-1, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN | FAN_CLOSE_WRITE, AT_FDCWD, "/tmp");
    return 0;
}
