/* Run inside a chroot: "/f" and "/out" are the jail's files, not the host's. */
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    char buf[16];
    int fd = open("/f", O_RDONLY);
    read(fd, buf, sizeof buf);
    close(fd);
    close(open("/out", O_WRONLY | O_CREAT | O_TRUNC, 0644));
    return 0;
}
