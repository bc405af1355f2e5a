/* stat-family calls on files whose fields do not change between two runs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *f = argc > 1 ? argv[1] : "/dev/null";
    struct stat st;
    struct statfs sf;
    struct statx sx;
    write(-1, "BEGIN", 5);
    stat(f, &st);
    lstat(f, &st);
    stat("/dev/null", &st);
    stat("/nonexistent", &st);
    int fd = open(f, O_RDONLY);
    fstat(fd, &st);
    fstatat(AT_FDCWD, f, &st, AT_SYMLINK_NOFOLLOW);
    statx(AT_FDCWD, f, AT_STATX_SYNC_AS_STAT, STATX_TYPE | STATX_MODE | STATX_SIZE, &sx);
    statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &sx);
    statx(AT_FDCWD, "/nonexistent", 0, STATX_ALL, &sx);
    statfs("/proc", &sf);
    fstatfs(open("/proc", O_RDONLY), &sf);
    return 0;
}
