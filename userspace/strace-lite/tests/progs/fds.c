/* Descriptor-creating calls with flags: eventfd2, timerfd_*, signalfd4, inotify_*,
   memfd_create, pipes moved with splice/tee/vmsplice, copy_file_range, openat2,
   close_range and pidfd_open. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
    write(-1, "BEGIN", 5);
    eventfd(3, EFD_CLOEXEC | EFD_NONBLOCK);
    eventfd(0, EFD_SEMAPHORE);
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    struct itimerspec its = {{1, 0}, {5, 500}}, old;
    timerfd_settime(t, 0, &its, &old);
    timerfd_settime(t, TFD_TIMER_ABSTIME, &its, NULL);
    struct itimerspec disarm = {{0, 0}, {0, 0}};
    timerfd_settime(t, 0, &disarm, NULL);
    timerfd_gettime(t, &old);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGTERM);
    signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    inotify_add_watch(in, "/tmp", IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_ONLYDIR);
    inotify_add_watch(in, "/nonexistent", IN_ALL_EVENTS);
    inotify_rm_watch(in, 1);
    inotify_rm_watch(in, 99);
    int mfd = memfd_create("test-memfd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    memfd_create("other", 0);
    write(mfd, "0123456789", 10);
    int p[2];
    pipe2(p, O_CLOEXEC);
    loff_t off = 2;
    splice(mfd, &off, p[1], NULL, 4, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    int q[2];
    pipe2(q, O_NONBLOCK);
    tee(p[0], q[1], 2, SPLICE_F_NONBLOCK);
    char buf[] = "vmsplice data";
    struct iovec iov = {buf, 5};
    vmsplice(q[1], &iov, 1, SPLICE_F_GIFT);
    int dst = memfd_create("dst", 0);
    loff_t a = 0, b = 3;
    copy_file_range(mfd, &a, dst, &b, 5, 0);
    copy_file_range(mfd, NULL, dst, NULL, 5, 0);
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .mode = 0, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH};
    syscall(SYS_openat2, AT_FDCWD, "/dev/null", &how, sizeof how);
    struct open_how how2 = {.flags = O_WRONLY | O_CREAT, .mode = 0600, .resolve = 0};
    syscall(SYS_openat2, AT_FDCWD, "/nonexistent/x", &how2, sizeof how2);
    int pfd = syscall(SYS_pidfd_open, getpid(), 0);
    syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0);
    syscall(SYS_pidfd_getfd, pfd, 0, 0);
    syscall(SYS_close_range, 100, 200, 0);
    syscall(SYS_close_range, 100, ~0U, CLOSE_RANGE_CLOEXEC);
    syscall(SYS_close_range, 300, 400, CLOSE_RANGE_UNSHARE);
    return 0;
}
