/* The sample firmware's own runtime (start.S) and its assembly sites (sites.S). */
#ifndef FW_H
#define FW_H

/* start.S: Linux system calls through `svc #0`; each returns -errno on failure. */
long sys_openat(int dirfd, const char *path, int flags, int mode);
long sys_close(int fd);
long sys_read(int fd, void *buf, unsigned long len);
long sys_write(int fd, const void *buf, unsigned long len);
long sys_mprotect(void *addr, unsigned long len, int prot);
void sys_exit(int status) __attribute__((noreturn));

/* sites.S: each returns 0 when its original code ran, 1 when its replacement did. */
int crc_site(void);	/* alternative_if / alternative_else / alternative_endif */
int call_site(void);	/* the replacement branches out of itself */
int skip_site(void);	/* the replacement branches inside itself */
const char *adrp_site(void);	/* ADRP + ADD: the address of "original" or "patched" */

#endif
