/* Calls real programs make that need more than their arguments: the mask a signal
   frame restores (rt_sigreturn), sigaction flags, uname, faccessat2's AT_EACCESS,
   utimensat with no times, and clone3 for a thread with the tid written back. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

static void on_usr1(int sig, siginfo_t *si, void *ctx) { (void)sig; (void)si; (void)ctx; }
static void *idle(void *arg) { pause(); return arg; }

int main(void) {
    write(-1, "BEGIN", 5);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigaddset(&sa.sa_mask, SIGINT);
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGTERM);
    sigprocmask(SIG_BLOCK, &m, NULL);
    raise(SIGUSR1);
    struct utsname u;
    uname(&u);
    syscall(SYS_faccessat2, AT_FDCWD, "/dev/null", R_OK | W_OK, AT_EACCESS);
    syscall(SYS_faccessat2, AT_FDCWD, "/nonexistent", F_OK, AT_EACCESS | AT_SYMLINK_NOFOLLOW);
    int fd = open("/dev/null", O_RDONLY | O_PATH | O_DIRECTORY);
    utimensat(AT_FDCWD, "/nonexistent", NULL, 0);
    (void)fd;
    pthread_t t;
    pthread_create(&t, NULL, idle, NULL);
    return 0;
}
