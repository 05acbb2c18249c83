/* Opens a file and exits: run as a setuid or file-capability image after a full drop to nobody. */
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1) usleep(300000);
    close(open("/etc/hostname", O_RDONLY));
    return 0;
}
