/* System V shared memory, semaphores and message queues: create, use, remove. */
#define _GNU_SOURCE
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

int main(void) {
    write(-1, "BEGIN", 5);
    int shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | IPC_EXCL | 0600);
    void *p = shmat(shm, NULL, SHM_RDONLY);
    shmdt(p);
    shmctl(shm, IPC_RMID, NULL);
    shmget(0x1234, 4096, 0);
    int sem = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    struct sembuf ops[2] = {{0, 1, IPC_NOWAIT}, {1, 0, SEM_UNDO}};
    semop(sem, ops, 2);
    semctl(sem, 0, GETVAL);
    semctl(sem, 0, IPC_RMID);
    int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    struct { long type; char text[8]; } m = {1, "hello"};
    msgsnd(q, &m, 6, IPC_NOWAIT);
    msgrcv(q, &m, sizeof m.text, 0, IPC_NOWAIT | MSG_NOERROR);
    msgrcv(q, &m, sizeof m.text, 0, IPC_NOWAIT);
    msgctl(q, IPC_RMID, NULL);
    return 0;
}
