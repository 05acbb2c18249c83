#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int keep = atoi(argv[1]), drop = atoi(argv[2]);
    int fd = openat(keep, "inherited", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
    /* the dropped number is reused by a new open: it is this file, not dirA */
    int n = open("/etc/hostname", O_RDONLY);
    (void)drop;
    fd = openat(n, "x", O_RDONLY);  /* ENOTDIR: nothing to record */
    return fd >= 0;
}
