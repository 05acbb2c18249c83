/* Credential changes: setresuid(65534, 0, 0) keeps euid 0 (no drop), then a real drop of the
 * effective uid, then a rise back to root through the saved uid (an escalation). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>

int main(void) {
    setresuid(65534, 0, 0);
    setresuid(-1, 65534, -1);
    setresuid(-1, 0, -1);
    close(open("/etc/hostname", O_RDONLY));
    return 0;
}
