/*
 * xs-peer-shim.c - LD_PRELOAD library that lets Debian's Xen 4.17 xenstored
 * (C) and oxenstored (OCaml) run on a machine without a hypervisor, serving
 * only their unix socket. rxen's differential tests and benchmarks use them as
 * reference peers; see run-peer.sh beside this file.
 *
 * What the daemons see through this library:
 *   - libxenctrl: every domid below DOMID_FIRST_RESERVED exists and runs, so
 *     INTRODUCE/RELEASE/IS_DOMAIN_INTRODUCED behave as on a host where the
 *     domain was created;
 *   - libxengnttab / xc_map_foreign_range: a "mapped" ring page is a fresh
 *     anonymous page nobody else writes;
 *   - libxenevtchn: ports are handed out from a counter; the event fd is the
 *     read end of a pipe that is never written, so no event ever fires;
 *   - /proc/xen/xsd_port and /proc/xen/xsd_kva: dom0's ring is a memfd page;
 *   - setrlimit(RLIMIT_NOFILE) above the hard limit (no CAP_SYS_RESOURCE in
 *     containers) is clamped instead of failing start-up;
 *   - when XS_PEER_SOCKET is set, bind/unlink of oxenstored's compiled-in
 *     socket path /var/run/xenstored/socket (and mkdir of its directory) go to
 *     XS_PEER_SOCKET (and its directory) instead, so oxenstored needs neither
 *     root nor a mount namespace.
 * Guest-ring paths are therefore not exercised by these peers.
 */
#define _GNU_SOURCE
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#include <dlfcn.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PEER_PAGE_SIZE 4096
/* xen/include/public/xen.h: DOMID_FIRST_RESERVED */
#define PEER_DOMID_FIRST_RESERVED 0x7ff0U

static int peer_handle_token;
static int peer_event_pipe[2] = { -1, -1 };
static int peer_next_port = 16;

static void *peer_anon_page(size_t len)
{
    void *page = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return page == MAP_FAILED ? NULL : page;
}

/* ---- libxenctrl ---- */
xc_interface *xc_interface_open(xentoollog_logger *logger,
                                xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    (void)logger; (void)dombuild_logger; (void)open_flags;
    return (xc_interface *)&peer_handle_token;
}

int xc_interface_close(xc_interface *xch)
{
    (void)xch;
    return 0;
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid,
                      unsigned int max_doms, xc_dominfo_t *info)
{
    (void)xch;
    if (max_doms == 0 || first_domid >= PEER_DOMID_FIRST_RESERVED)
        return 0;
    memset(info, 0, sizeof(*info));
    info->domid = first_domid;
    info->running = 1;
    return 1;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain,
                          unsigned int max_domains, xc_domaininfo_t *info)
{
    unsigned int n = 0;
    (void)xch;
    while (n < max_domains && first_domain + n < PEER_DOMID_FIRST_RESERVED) {
        memset(&info[n], 0, sizeof(info[n]));
        info[n].domain = first_domain + n;
        info[n].flags = XEN_DOMINF_running;
        n++;
    }
    return (int)n;
}

void *xc_map_foreign_range(xc_interface *xch, uint32_t dom, int size,
                           int prot, unsigned long mfn)
{
    (void)xch; (void)dom; (void)prot; (void)mfn;
    return peer_anon_page(size > 0 ? (size_t)size : PEER_PAGE_SIZE);
}

/* ---- libxengnttab ---- */
xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger,
                                 unsigned open_flags)
{
    (void)logger; (void)open_flags;
    return (xengnttab_handle *)&peer_handle_token;
}

int xengnttab_close(xengnttab_handle *xgt)
{
    (void)xgt;
    return 0;
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    (void)xgt; (void)nr_grants;
    return 0;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid,
                              uint32_t ref, int prot)
{
    (void)xgt; (void)domid; (void)ref; (void)prot;
    return peer_anon_page(PEER_PAGE_SIZE);
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address,
                    uint32_t count)
{
    (void)xgt;
    return munmap(start_address, (size_t)count * PEER_PAGE_SIZE);
}

/* ---- libxenevtchn ---- */
xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
                                 unsigned open_flags)
{
    (void)logger; (void)open_flags;
    if (peer_event_pipe[0] < 0 && pipe2(peer_event_pipe, O_CLOEXEC) != 0)
        return NULL;
    return (xenevtchn_handle *)&peer_handle_token;
}

xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger,
                                   int fd, unsigned open_flags)
{
    (void)fd;
    return xenevtchn_open(logger, open_flags);
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    (void)xce;
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
    (void)xce;
    return peer_event_pipe[0];
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce,
                                              unsigned int virq)
{
    (void)xce; (void)virq;
    return peer_next_port++;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce,
                                                     uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    (void)xce; (void)domid; (void)remote_port;
    return peer_next_port++;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    (void)xce;
    errno = EAGAIN;
    return -1;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce; (void)port;
    return 0;
}

/* ---- /proc/xen/xsd_port and /proc/xen/xsd_kva ---- */
/* Returns a descriptor for one of the two dom0 ring files, or -2 otherwise. */
static int peer_open_proc_xen(const char *path)
{
    if (strcmp(path, "/proc/xen/xsd_port") == 0) {
        static const char port[] = "1";
        int fd = memfd_create("xsd_port", MFD_CLOEXEC);
        if (fd < 0)
            return -1;
        if (write(fd, port, sizeof(port) - 1) != (ssize_t)(sizeof(port) - 1) ||
            lseek(fd, 0, SEEK_SET) != 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
    if (strcmp(path, "/proc/xen/xsd_kva") == 0) {
        int fd = memfd_create("xsd_kva", MFD_CLOEXEC);
        if (fd < 0)
            return -1;
        if (ftruncate(fd, PEER_PAGE_SIZE) != 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
    return -2;
}

typedef int (*peer_open_fn)(const char *, int, ...);

static int peer_open_common(const char *sym, const char *path, int flags,
                            mode_t mode)
{
    peer_open_fn real;
    int fd = peer_open_proc_xen(path);
    if (fd != -2)
        return fd;
    real = (peer_open_fn)dlsym(RTLD_NEXT, sym);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return peer_open_common("open", path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return peer_open_common("open64", path, flags, mode);
}

/* ---- RLIMIT_NOFILE without CAP_SYS_RESOURCE ---- */
typedef int (*peer_setrlimit_fn)(__rlimit_resource_t, const struct rlimit *);

int setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim)
{
    peer_setrlimit_fn real = (peer_setrlimit_fn)dlsym(RTLD_NEXT, "setrlimit");
    struct rlimit now, clamped;
    int rc;

    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    rc = real(resource, rlim);
    if (rc == 0 || errno != EPERM || getrlimit(resource, &now) != 0)
        return rc;
    clamped = *rlim;
    if (clamped.rlim_max > now.rlim_max)
        clamped.rlim_max = now.rlim_max;
    if (clamped.rlim_cur > clamped.rlim_max)
        clamped.rlim_cur = clamped.rlim_max;
    return real(resource, &clamped);
}

/* ---- oxenstored's compiled-in socket path ---- */
/* tools/ocaml/xenstored/define.ml: xs_daemon_socket = XEN_RUN_STORED/socket;
 * Debian builds XEN_RUN_STORED as /var/run/xenstored (/run on newer builds). */
static int peer_is_ox_rundir(const char *path)
{
    return strcmp(path, "/var/run/xenstored") == 0 || strcmp(path, "/run/xenstored") == 0;
}

static int peer_is_ox_socket(const char *path)
{
    return strcmp(path, "/var/run/xenstored/socket") == 0 ||
           strcmp(path, "/run/xenstored/socket") == 0;
}

/* The replacement socket path, or NULL when paths are left alone. */
static const char *peer_socket_override(const char *path)
{
    const char *sock = getenv("XS_PEER_SOCKET");
    if (!sock || !*sock || !path || !peer_is_ox_socket(path))
        return NULL;
    return sock;
}

typedef int (*peer_bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    peer_bind_fn real = (peer_bind_fn)dlsym(RTLD_NEXT, "bind");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    if (addr && addr->sa_family == AF_UNIX &&
        len > offsetof(struct sockaddr_un, sun_path)) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
        char path[sizeof(un->sun_path) + 1];
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        const char *sock;
        if (n > sizeof(un->sun_path))
            n = sizeof(un->sun_path);
        memcpy(path, un->sun_path, n);
        path[n] = 0;
        sock = peer_socket_override(path);
        if (sock) {
            struct sockaddr_un moved;
            if (strlen(sock) >= sizeof(moved.sun_path)) {
                errno = ENAMETOOLONG;
                return -1;
            }
            memset(&moved, 0, sizeof(moved));
            moved.sun_family = AF_UNIX;
            strcpy(moved.sun_path, sock);
            return real(fd, (const struct sockaddr *)&moved, sizeof(moved));
        }
    }
    return real(fd, addr, len);
}

typedef int (*peer_unlink_fn)(const char *);

int unlink(const char *path)
{
    peer_unlink_fn real = (peer_unlink_fn)dlsym(RTLD_NEXT, "unlink");
    const char *sock = peer_socket_override(path);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(sock ? sock : path);
}

typedef int (*peer_mkdir_fn)(const char *, mode_t);

int mkdir(const char *path, mode_t mode)
{
    peer_mkdir_fn real = (peer_mkdir_fn)dlsym(RTLD_NEXT, "mkdir");
    const char *sock = getenv("XS_PEER_SOCKET");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    if (sock && *sock && peer_is_ox_rundir(path)) {
        /* The socket's directory exists already (the runner made it). */
        errno = EEXIST;
        return -1;
    }
    return real(path, mode);
}
