/* Credentials and capabilities, and prctl options, with values that fail or are no-ops as root. */
#define _GNU_SOURCE
#include <grp.h>
#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    write(-1, "BEGIN", 5);
    setuid(0);
    setgid(0);
    setreuid(-1, 0);
    setregid(0, -1);
    setresuid(-1, -1, -1);
    setresgid(0, 0, 0);
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    gid_t gr, ge, gs;
    getresgid(&gr, &ge, &gs);
    setfsuid(0);
    setfsgid(0);
    gid_t g[2] = {0, 0};
    setgroups(1, g);
    setgroups(0, NULL);
    getgroups(2, g);
    getgroups(0, NULL);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    syscall(SYS_capget, &h, d);
    syscall(SYS_capset, &h, d);
    h.version = 0x12345678;
    syscall(SYS_capget, &h, d);
    char name[16];
    prctl(PR_GET_NAME, name);
    prctl(PR_SET_NAME, "tname");
    prctl(PR_GET_DUMPABLE);
    prctl(PR_SET_DUMPABLE, 1);
    prctl(PR_SET_PDEATHSIG, 9);
    int sig;
    prctl(PR_GET_PDEATHSIG, &sig);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    prctl(PR_CAPBSET_READ, 21);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    prctl(PR_GET_SECCOMP);
    prctl(PR_GET_TIMERSLACK);
    prctl(PR_SET_KEEPCAPS, 1);
    prctl(PR_GET_KEEPCAPS);
    prctl(9999, 1, 2, 3, 4);
    return 0;
}
