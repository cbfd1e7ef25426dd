/* posix.h: helpers shared by the POSIX port's files (not a public header). */
#ifndef TB_PORT_POSIX_H
#define TB_PORT_POSIX_H

#include <sys/socket.h>

#include "tb/addr.h"

int tb_posix_sockaddr(const tb_addr_t *a, struct sockaddr_storage *ss, socklen_t *len);
void tb_posix_from_sockaddr(const struct sockaddr *sa, tb_addr_t *out);
int tb_posix_nonblock(int fd);
/* Read scratch size for one read() of a stream: on the stack, not in .bss. */
#define TB_POSIX_READ_CHUNK (32 * 1024)

#endif
