#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void run(void (*fn)(void)) {
    pid_t p = fork();
    if (p == 0) { fn(); _exit(120); }
    int st; waitpid(p, &st, 0);
}

static void memfd_exec(void) {
    int src = open("/usr/bin/true", O_RDONLY);
    struct stat st; fstat(src, &st);
    int m = memfd_create("payload", MFD_CLOEXEC);
    sendfile(m, src, NULL, st.st_size);
    char *args[] = {"payload", "from-memfd", NULL};
    char *env[] = {NULL};
    fexecve(m, args, env);
}

/* argv in a file mapping never touched: not resident when execve starts */
static void lazy_exec(void) {
    int fd = open("lazy-args", O_RDWR | O_CREAT | O_TRUNC, 0644);
    char buf[3 * 4096] = {0};
    strcpy(buf + 8192, "lazily-paged-argument");
    write(fd, buf, sizeof buf);
    close(fd);
    fd = open("lazy-args", O_RDONLY);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    char *map = mmap(NULL, sizeof buf, PROT_READ, MAP_PRIVATE, fd, 0);
    char *args[] = {"/bin/sh", "-c", "sleep 0.5", map + 8192, NULL};
    execv("/bin/sh", args);
}

int main(void) {
    run(memfd_exec);
    run(lazy_exec);
    return 0;
}
