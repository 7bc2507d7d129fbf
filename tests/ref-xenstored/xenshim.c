/* xenshim: LD_PRELOAD library that lets Debian's C xenstored (Xen 4.17) run on
 * a Linux machine without a hypervisor, as the reference server of xenmq's
 * Xenstore conformance tests.
 *
 * What it stands in for:
 *   - libxenctrl: every domid below DOMID_FIRST_RESERVED exists and runs.
 *   - libxenevtchn: ports are numbers; the pollable fd is an eventfd that this
 *     library raises whenever a guest ring has work.
 *   - libxengnttab: mapping a domain's Xenstore page gives a fresh page, and
 *     a bridge thread exposes that page's ring as a Unix socket,
 *     $XENSHIM_DOMAIN_DIR/dom<domid>. A client connected to that socket talks
 *     to xenstored exactly as the guest would over its ring, so tests can
 *     compare unprivileged-domain behaviour with the real daemon.
 *   - /proc/xen/xsd_port and /proc/xen/xsd_kva, read for dom0's own ring.
 *
 * Own code for the xenmq project. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xen/io/xs_wire.h>

#define PAGE 4096
#define FIRST_RESERVED 0x7ff0U

static int handle_token;      /* address used as the opaque handle */
static int kick_fd = -1;      /* eventfd polled by xenstored */
static uint32_t port_seq = 100;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void kick(void)
{
    uint64_t one = 1;
    if (kick_fd >= 0)
        (void)!write(kick_fd, &one, sizeof(one));
}

/* ---- libxenctrl ---------------------------------------------------------- */
xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dlogger,
                                unsigned flags)
{
    (void)logger; (void)dlogger; (void)flags;
    return (xc_interface *)&handle_token;
}

int xc_interface_close(xc_interface *xch) { (void)xch; return 0; }

int xc_domain_getinfo(xc_interface *xch, uint32_t first, unsigned int max, xc_dominfo_t *info)
{
    (void)xch;
    if (max == 0 || first >= FIRST_RESERVED)
        return 0;
    memset(info, 0, sizeof(*info));
    info->domid = first;
    info->running = 1;
    return 1;
}

void *xc_map_foreign_range(xc_interface *xch, uint32_t dom, int size, int prot, unsigned long mfn)
{
    (void)xch; (void)dom; (void)prot; (void)mfn;
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* ---- libxenevtchn -------------------------------------------------------- */
xenevtchn_handle *xenevtchn_open(xentoollog_logger *logger, unsigned flags)
{
    (void)logger; (void)flags;
    pthread_mutex_lock(&lock);
    if (kick_fd < 0)
        kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_unlock(&lock);
    return (xenevtchn_handle *)&handle_token;
}

xenevtchn_handle *xenevtchn_fdopen(xentoollog_logger *logger, int fd, unsigned flags)
{
    (void)fd;
    return xenevtchn_open(logger, flags);
}

int xenevtchn_close(xenevtchn_handle *h) { (void)h; return 0; }
int xenevtchn_fd(xenevtchn_handle *h) { (void)h; return kick_fd; }

static xenevtchn_port_or_error_t next_port(void)
{
    return (xenevtchn_port_or_error_t)__atomic_fetch_add(&port_seq, 1, __ATOMIC_RELAXED);
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *h, unsigned int virq)
{
    (void)h; (void)virq;
    return next_port();
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *h, uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    (void)h; (void)domid; (void)remote_port;
    return next_port();
}

int xenevtchn_notify(xenevtchn_handle *h, evtchn_port_t port) { (void)h; (void)port; return 0; }
int xenevtchn_unmask(xenevtchn_handle *h, evtchn_port_t port) { (void)h; (void)port; return 0; }
int xenevtchn_unbind(xenevtchn_handle *h, evtchn_port_t port) { (void)h; (void)port; return 0; }

/* Port 1 is never handed out (ports start at 100), so xenstored never takes
 * a kick for its VIRQ_DOM_EXC port; it then scans every ring. */
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *h)
{
    uint64_t n;
    (void)h;
    (void)!read(kick_fd, &n, sizeof(n));
    return 1;
}

/* ---- libxengnttab: guest rings bridged to Unix sockets --------------------- */
struct bridge {
    struct bridge *next;
    void *page;
    uint32_t domid;
    int listen_fd;
    int stop;                  /* set by unmap, read by the thread */
    pthread_t thread;
};
static struct bridge *bridges;

static struct xenstore_domain_interface *intf_of(struct bridge *b)
{
    return (struct xenstore_domain_interface *)b->page;
}

/* Moves bytes from the client into the request ring; returns -1 on EOF. */
static int pump_requests(struct bridge *b, int fd)
{
    struct xenstore_domain_interface *in = intf_of(b);
    uint32_t cons = __atomic_load_n(&in->req_cons, __ATOMIC_ACQUIRE);
    uint32_t prod = in->req_prod;
    uint32_t space = XENSTORE_RING_SIZE - (prod - cons);
    uint32_t off = MASK_XENSTORE_IDX(prod);
    uint32_t chunk = XENSTORE_RING_SIZE - off;
    char buf[XENSTORE_RING_SIZE];
    ssize_t got;
    if (space == 0)
        return 0;
    got = read(fd, buf, space);
    if (got == 0)
        return -1;
    if (got < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if ((uint32_t)got < chunk)
        chunk = (uint32_t)got;
    memcpy(in->req + off, buf, chunk);
    memcpy(in->req, buf + chunk, (size_t)got - chunk);
    __atomic_store_n(&in->req_prod, prod + (uint32_t)got, __ATOMIC_RELEASE);
    kick();
    return 1;
}

/* Moves bytes from the response ring to the client. */
static int pump_responses(struct bridge *b, int fd)
{
    struct xenstore_domain_interface *in = intf_of(b);
    uint32_t prod = __atomic_load_n(&in->rsp_prod, __ATOMIC_ACQUIRE);
    uint32_t cons = in->rsp_cons;
    int moved = 0;
    while (cons != prod) {
        uint32_t off = MASK_XENSTORE_IDX(cons);
        uint32_t len = prod - cons;
        ssize_t put;
        if (len > XENSTORE_RING_SIZE - off)
            len = XENSTORE_RING_SIZE - off;
        put = write(fd, in->rsp + off, len);
        if (put <= 0)
            return put < 0 && errno != EINTR && errno != EAGAIN ? -1 : moved;
        cons += (uint32_t)put;
        __atomic_store_n(&in->rsp_cons, cons, __ATOMIC_RELEASE);
        moved = 1;
    }
    if (moved)
        kick();
    return moved;
}

static void *bridge_main(void *arg)
{
    struct bridge *b = arg;
    int client = -1;
    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
        struct pollfd p = { .fd = client >= 0 ? client : b->listen_fd, .events = POLLIN };
        int r = poll(&p, 1, 1);
        if (client < 0) {
            if (r > 0)
                client = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            continue;
        }
        if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) && pump_requests(b, client) < 0) {
            close(client);
            client = -1;
            continue;
        }
        if (pump_responses(b, client) < 0) {
            close(client);
            client = -1;
        }
    }
    if (client >= 0)
        close(client);
    close(b->listen_fd);
    return NULL;
}

static void start_bridge(struct bridge *b)
{
    const char *dir = getenv("XENSHIM_DOMAIN_DIR");
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    b->listen_fd = -1;
    if (!dir)
        return;
    if (snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/dom%u", dir, b->domid) >=
        (int)sizeof(addr.sun_path))
        return;
    unlink(addr.sun_path);
    b->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (b->listen_fd < 0)
        return;
    if (bind(b->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(b->listen_fd, 8) < 0) {
        close(b->listen_fd);
        b->listen_fd = -1;
        return;
    }
    if (pthread_create(&b->thread, NULL, bridge_main, b) != 0) {
        close(b->listen_fd);
        b->listen_fd = -1;
    }
}

xengnttab_handle *xengnttab_open(xentoollog_logger *logger, unsigned flags)
{
    (void)logger; (void)flags;
    return (xengnttab_handle *)&handle_token;
}

int xengnttab_close(xengnttab_handle *h) { (void)h; return 0; }
int xengnttab_set_max_grants(xengnttab_handle *h, uint32_t n) { (void)h; (void)n; return 0; }

void *xengnttab_map_grant_ref(xengnttab_handle *h, uint32_t domid, uint32_t ref, int prot)
{
    struct bridge *b;
    (void)h; (void)ref; (void)prot;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b->page == MAP_FAILED) {
        free(b);
        return NULL;
    }
    b->domid = domid;
    start_bridge(b);
    pthread_mutex_lock(&lock);
    b->next = bridges;
    bridges = b;
    pthread_mutex_unlock(&lock);
    return b->page;
}

/* The page stays mapped (the bridge thread may still be reading it); the
 * bridge is told to stop. A test daemon lives seconds, so this is bounded. */
int xengnttab_unmap(xengnttab_handle *h, void *start_address, uint32_t count)
{
    struct bridge *b;
    (void)h; (void)count;
    pthread_mutex_lock(&lock);
    for (b = bridges; b; b = b->next)
        if (b->page == start_address)
            __atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&lock);
    return 0;
}

/* ---- /proc/xen files read for dom0 ---------------------------------------- */
static int proc_file(const char *path)
{
    int fd;
    if (strcmp(path, "/proc/xen/xsd_port") == 0) {
        fd = memfd_create("xsd_port", MFD_CLOEXEC);
        if (fd >= 0) {
            (void)!write(fd, "1\n", 2);
            lseek(fd, 0, SEEK_SET);
        }
        return fd;
    }
    if (strcmp(path, "/proc/xen/xsd_kva") == 0) {
        fd = memfd_create("xsd_kva", MFD_CLOEXEC);
        if (fd >= 0)
            (void)!ftruncate(fd, PAGE);
        return fd;
    }
    return -2;
}

int open(const char *path, int flags, ...)
{
    static int (*real_open)(const char *, int, ...);
    mode_t mode = 0;
    int fd = proc_file(path);
    if (fd != -2)
        return fd;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (!real_open)
        real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    return real_open(path, flags, mode);
}
