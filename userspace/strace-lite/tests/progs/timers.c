/* POSIX timers: create, arm, disarm, read back, and one that fires (a SIGALRM
   whose siginfo names the timer), and a signal queued with a value. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void on_signal(int sig) { (void)sig; }

int main(void) {
    write(-1, "BEGIN", 5);
    signal(SIGALRM, on_signal);
    signal(SIGUSR1, on_signal);
    timer_t t;
    syscall(SYS_timer_create, CLOCK_MONOTONIC, NULL, &t);
    struct itimerspec far = {{0, 0}, {100, 0}}, zero = {{0, 0}, {0, 0}}, old;
    syscall(SYS_timer_settime, t, 0, &far, &old);
    syscall(SYS_timer_settime, t, TIMER_ABSTIME, &zero, NULL);
    syscall(SYS_timer_gettime, t, &old);
    struct itimerspec soon = {{0, 0}, {0, 1000000}};
    syscall(SYS_timer_settime, t, 0, &soon, NULL);
    pause();
    syscall(SYS_timer_delete, t);
    union sigval v = {.sival_int = 42};
    sigqueue(getpid(), SIGUSR1, v);
    return 0;
}
