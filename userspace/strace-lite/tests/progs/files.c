/* Everyday file, time and process calls whose arguments are plain: ownership, locks,
   syncs, links, extended attributes, vectored I/O, limits, priorities, timers. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    write(-1, "BEGIN", 5);
    int fd = open("/dev/null", O_RDWR);
    fchown(fd, -1, -1);
    chown("/nonexistent", 0, 0);
    lchown("/nonexistent", 1, -1);
    fchownat(AT_FDCWD, "/nonexistent", 0, 0, AT_SYMLINK_NOFOLLOW);
    flock(fd, LOCK_EX | LOCK_NB);
    flock(fd, LOCK_UN);
    fsync(fd);
    fdatasync(fd);
    syncfs(fd);
    link("/nonexistent", "/nonexistent2");
    renameat2(AT_FDCWD, "/nonexistent", AT_FDCWD, "/nonexistent2", RENAME_NOREPLACE);
    gid_t groups[4];
    getgroups(0, groups);
    linkat(AT_FDCWD, "/nonexistent", AT_FDCWD, "/nonexistent2", AT_SYMLINK_FOLLOW);
    symlinkat("target", AT_FDCWD, "/nonexistent/link");
    mknodat(AT_FDCWD, "/nonexistent/fifo", S_IFIFO | 0644, 0);
    fallocate(fd, 0, 0, 4096);
    char buf[64];
    getxattr("/nonexistent", "user.x", buf, sizeof buf);
    setxattr("/nonexistent", "user.x", "v", 1, XATTR_CREATE);
    listxattr("/nonexistent", buf, sizeof buf);
    removexattr("/nonexistent", "user.x");
    char a[4] = "abc", b[4] = "def";
    struct iovec iov[2] = {{a, 3}, {b, 3}};
    pwritev(fd, iov, 2, 0);
    preadv(fd, iov, 2, 0);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    setrlimit(RLIMIT_CORE, &rl);
    getpriority(PRIO_PROCESS, 0);
    setpriority(PRIO_PROCESS, 0, 0);
    getpgid(0);
    getsid(0);
    struct timespec ts;
    clock_getres(CLOCK_MONOTONIC, &ts);
    struct itimerval it = {{0, 0}, {0, 0}}, old;
    setitimer(ITIMER_REAL, &it, &old);
    getitimer(ITIMER_VIRTUAL, &old);
    sigset_t m;
    sigemptyset(&m);
    sigpending(&m);
    syscall(SYS_rt_sigqueueinfo, -1, SIGUSR1, NULL);
    unshare(0);
    unshare(CLONE_NEWUTS | CLONE_NEWIPC);
    sync_file_range(fd, 0, 4096, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE);
    struct rlimit rl2;
    syscall(SYS_getrlimit, RLIMIT_STACK, &rl2);
    unsigned cpu, node;
    syscall(SYS_getcpu, &cpu, &node, NULL);
    syscall(SYS_personality, 0xffffffff);
    umask(022);
    sched_yield();
    return 0;
}
