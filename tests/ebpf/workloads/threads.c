/* Exit status is the process's wait status: here the group leader ends first with pthread_exit, and
 * the last thread decides the status (exit_group), as wait(2) reports it. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static void *late(void *arg) {
    usleep(100000);
    exit(atoi(arg));
}

int main(int argc, char **argv) {
    pthread_t t;
    pthread_create(&t, NULL, late, argc > 1 ? argv[1] : "0");
    pthread_exit(NULL);
}
