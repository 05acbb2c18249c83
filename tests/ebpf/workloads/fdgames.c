#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void touch_at(int dfd, const char *name) {
    int fd = openat(dfd, name, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) { perror(name); exit(1); }
    close(fd);
}

static int shared_child(void *arg) {
    int *fds = arg;
    dup2(fds[1], fds[0]);  /* in the shared table: the parent's fds[0] now names dirB */
    return 0;
}

int main(int argc, char **argv) {
    mkdir("dirA", 0755); mkdir("dirB", 0755);
    int a = open("dirA", O_RDONLY | O_DIRECTORY);
    int b = open("dirB", O_RDONLY | O_DIRECTORY);
    /* dup2: a write to dirB/x after the dup2, not dirA/x */
    dup2(b, a);
    touch_at(a, "x");
    /* descriptor reuse after close: a file closed, a directory gets its number */
    close(b);
    int p = open("/etc/hostname", O_RDONLY);
    close(p);
    int d = open("dirA", O_RDONLY | O_DIRECTORY);
    touch_at(d, "reused");
    /* fcntl F_DUPFD_CLOEXEC and dup3 */
    int e = fcntl(d, F_DUPFD_CLOEXEC, 40);
    touch_at(e, "dupfd");
    dup3(d, 50, O_CLOEXEC);
    touch_at(50, "dup3");
    /* close_range drops them; a new directory gets 40 again via F_DUPFD */
    close_range(40, 60, 0);
    int f = open("dirB", O_RDONLY | O_DIRECTORY);
    int g = fcntl(f, F_DUPFD, 40);
    touch_at(g, "after-range");
    /* CLONE_FILES: the child's dup2 changes the parent's table */
    int fds[2] = {g, d};
    char *stack = malloc(65536);
    pid_t c = clone(shared_child, stack + 65536, CLONE_FILES | SIGCHLD, fds);
    waitpid(c, NULL, 0);
    touch_at(g, "shared");  /* dirA/shared */
    /* fork copies: the child's dup2 does not reach the parent */
    pid_t k = fork();
    if (k == 0) { dup2(f, d); touch_at(d, "forked-child"); _exit(0); }
    waitpid(k, NULL, 0);
    touch_at(d, "forked-parent");  /* dirA */
    /* creat, openat2, /proc/self/fd and /dev/fd */
    close(creat("dirB/created", 0644));
    struct open_how how = {.flags = O_CREAT | O_WRONLY, .mode = 0644};
    close(syscall(SYS_openat2, f, "via-openat2", &how, sizeof(how)));
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d/procself", f);
    touch_at(AT_FDCWD, link);
    snprintf(link, sizeof link, "/dev/fd/%d", d);
    close(open(link, O_RDONLY | O_DIRECTORY));
    /* open_by_handle_at: a handle has no path */
    struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
    h->handle_bytes = MAX_HANDLE_SZ;
    int mnt;
    if (name_to_handle_at(AT_FDCWD, "dirB/created", h, &mnt, 0) == 0) {
        int mfd = open(".", O_RDONLY | O_DIRECTORY);
        int hfd = syscall(SYS_open_by_handle_at, mfd, h, O_RDONLY);
        if (hfd >= 0) close(hfd);
        close(mfd);
    }
    /* io_uring: its use is flagged (the setup alone suffices) */
    char params[120] = {0};
    int ring = syscall(425, 4, params);
    if (ring >= 0) close(ring);
    /* a close-on-exec descriptor is gone after exec; an inheritable one stays */
    int keep = open("dirB", O_RDONLY | O_DIRECTORY);
    int drop = open("dirA", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char kb[16], db[16];
    snprintf(kb, sizeof kb, "%d", keep);
    snprintf(db, sizeof db, "%d", drop);
    if (argc > 1)
        execl(argv[1], argv[1], kb, db, (char *)NULL);
    return 0;
}
