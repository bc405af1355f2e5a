/* Memory calls with known arguments: mmap flags, madvise advice, mlock*. */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    write(-1, "BEGIN", 5);
    char *p = mmap(0, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0);
    mmap(0, 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS | MAP_LOCKED | MAP_NONBLOCK, -1, 0);
    mmap(0, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_GROWSDOWN, -1, 0);
    mmap(0, 4096, PROT_READ | PROT_EXEC, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_SYNC, -1, 0);
    mmap(0, 2 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
    mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT | 0x4000000, -1, 0);
    mmap(p, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    mmap(0, 4096, PROT_READ, 0x40000000, -1, 0);
    int adv[] = {MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DONTNEED, MADV_FREE,
                 MADV_REMOVE, MADV_DONTFORK, MADV_DOFORK, MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE,
                 MADV_NOHUGEPAGE, MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_COLD,
                 MADV_PAGEOUT, 22, 23, 24, 25, 999};
    for (unsigned i = 0; i < sizeof adv / sizeof adv[0]; i++)
        madvise(p, 4096, adv[i]);
    mlock(p, 4096);
    munlock(p, 4096);
    mlock2(p, 4096, MLOCK_ONFAULT);
    mlock2(p, 4096, 0);
    mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
    mlockall(0);
    munlockall();
    msync(p, 4096, MS_ASYNC | MS_INVALIDATE);
    msync(p, 4096, MS_SYNC);
    mprotect(p, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
    unsigned char vec[16];
    mincore(p, 4096, vec);
    p = mremap(p, 65536, 131072, MREMAP_MAYMOVE);
    munmap(p, 131072);
    return 0;
}
