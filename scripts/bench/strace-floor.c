/*
 * The least a ptrace tracer of every syscall can do, as a reference for
 * scripts/bench/strace.sh: follow forks, and at each stop make the calls strace and
 * strace-lite both make (waitpid, PTRACE_GET_SYSCALL_INFO, PTRACE_SYSCALL), plus, with
 * READMEM set, one process_vm_readv of a read/write buffer (up to 32 bytes) as a tracer
 * that prints data must. It prints nothing. Whatever a real tracer costs above this
 * is its own work; below it, nothing can go without skipping stops or reads.
 *
 *   cc -O2 -o strace-floor strace-floor.c && READMEM=1 ./strace-floor dd ...
 */
#define _GNU_SOURCE
#include <sys/ptrace.h>
#include <linux/ptrace.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int readmem = getenv("READMEM") != NULL;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		raise(SIGSTOP);
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	if (ptrace(PTRACE_SEIZE, pid, 0,
		   PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
			   PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL) != 0)
		return 1;
	int status, code = 0;
	/* The child's own SIGSTOP: it waits there until traced; resumed without it. */
	if (waitpid(pid, &status, 0) != pid)
		return 1;
	ptrace(PTRACE_SYSCALL, pid, 0, 0);
	struct ptrace_syscall_info info;
	char buf[32];
	for (;;) {
		pid_t t = waitpid(-1, &status, __WALL);
		if (t < 0)
			break;
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			if (t == pid)
				code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			continue;
		}
		int sig = WSTOPSIG(status);
		if (sig == (SIGTRAP | 0x80)) {
			ptrace(PTRACE_GET_SYSCALL_INFO, t, sizeof info, &info);
			if (readmem && info.op == PTRACE_SYSCALL_INFO_ENTRY && info.entry.nr <= 1) {
				size_t n = info.entry.args[2] < sizeof buf ? info.entry.args[2] : sizeof buf;
				struct iovec local = {buf, n};
				struct iovec remote = {(void *)(unsigned long)info.entry.args[1], n};
				process_vm_readv(t, &local, 1, &remote, 1, 0);
			}
			sig = 0;
		} else if (status >> 16) {
			/* ptrace events (fork, exec, the first stop): no signal to deliver. */
			sig = 0;
		}
		ptrace(PTRACE_SYSCALL, t, 0, sig);
	}
	return code;
}
