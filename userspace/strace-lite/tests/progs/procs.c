/* wait4 and waitid on children that exit and are killed; signals waited for and
   an alternate stack; scheduling policies and affinity. */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The kernel's struct sched_attr (glibc's <sched.h> clashes with <linux/sched/types.h>). */
struct sched_attr {
    unsigned size, sched_policy;
    unsigned long long sched_flags;
    int sched_nice;
    unsigned sched_priority;
    unsigned long long sched_runtime, sched_deadline, sched_period;
    unsigned sched_util_min, sched_util_max;
};

int main(void) {
    write(-1, "BEGIN", 5);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, NULL);
    struct timespec ts = {0, 1000};
    siginfo_t si;
    sigtimedwait(&m, &si, &ts);
    kill(getpid(), SIGUSR2);
    sigtimedwait(&m, &si, &ts);
    static char stack[65536];
    stack_t ss = {.ss_sp = stack, .ss_size = sizeof stack, .ss_flags = 0}, old;
    sigaltstack(&ss, &old);
    sigaltstack(NULL, &old);
    struct sched_param sp = {0};
    sched_getscheduler(0);
    sched_getparam(0, &sp);
    sched_setscheduler(0, SCHED_OTHER, &sp);
    sched_get_priority_max(SCHED_FIFO);
    sched_get_priority_min(SCHED_RR);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof set, &set);
    sched_getaffinity(0, sizeof set, &set);
    sched_rr_get_interval(0, &ts);
    struct sched_attr sa;
    memset(&sa, 0, sizeof sa);
    syscall(SYS_sched_getattr, 0, &sa, sizeof sa, 0);
    syscall(SYS_sched_setattr, 0, &sa, 0);
    syscall(SYS_sched_getattr, 0, &sa, 8, 0);
    syscall(SYS_membarrier, 0, 0, 0);
    syscall(SYS_membarrier, 16, 0, 0);
    /* SIGCHLD blocked: its arrival before or after wait4 would be a race. */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int st;
    pid_t c = fork();
    if (c == 0)
        _exit(7);
    struct rusage ru0;
    wait4(c, &st, 0, &ru0);
    getrusage(RUSAGE_SELF, &ru0);
    c = fork();
    if (c == 0)
        _exit(3);
    waitid(P_PID, c, &si, WEXITED);
    waitid(P_ALL, 0, &si, WEXITED | WNOHANG);
    struct rusage ru;
    wait4(-1, &st, WNOHANG, &ru);
    return 0;
}
