/* A process that has dropped to nobody for good execs a setuid-root image and a file-capability
 * image: each exec raises the effective identity or capabilities (an escalation). */
#define _GNU_SOURCE
#include <sys/wait.h>
#include <unistd.h>
static void run(char *path, char *arg) {
    if (fork() == 0) {
        setresuid(65534, 65534, 65534);
        execl(path, path, arg, (char *)0);
        _exit(127);
    }
    wait(0);
}
int main(void) {
    run("./suidids", 0);
    run("./capids", 0);
    run("./suidids", "slow");
    run("./capids", "slow");
    return 0;
}
