/*
 * The C contender of `xenmq bench`: a frontend and a backend written the way
 * a C split driver is, with the genuine macros of Debian's xen/io/ring.h
 * (DEFINE_RING_TYPES, RING_PUSH_*_AND_CHECK_NOTIFY, RING_FINAL_CHECK_FOR_*,
 * RING_COPY_REQUEST, the overflow checks), over the shared memory and the
 * eventfds the Rust harness sets up. Its loops run the stream the xenmq
 * contenders run through the driver API (src/xring.rs): fill every free
 * slot, take what responses are there, the same message checks and the same
 * wait policy (spin, then arm the event index and sleep). It publishes once
 * per batch, as ring.h drivers do; xenmq's Client and Server also publish
 * every quarter ring within a long batch.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Built as Xen's own userspace tools are (latest interface version), with
 * the barriers they define on x86-64 (TSO: only the store-load ordering of
 * xen_mb needs an instruction). */
#define __XEN_TOOLS__ 1
#define xen_barrier() __asm__ __volatile__("" : : : "memory")
#define xen_mb() __asm__ __volatile__("mfence" : : : "memory")
#define xen_rmb() xen_barrier()
#define xen_wmb() xen_barrier()

#include <xen/io/ring.h>

/* The message stream; src/proto.rs has the same layout. */
enum { XB_OP_DATA = 1, XB_OP_BULK = 2, XB_OP_STOP = 3 };
enum { XB_MODE_TPUT = 0, XB_MODE_LAT = 1, XB_MODE_BULK = 2, XB_MODE_STOP = 3 };
#define XB_GOLDEN 0x9E3779B97F4A7C15ull
#define XB_BUF 4096u

struct xb_req {
    uint64_t id;
    uint32_t op;
    uint32_t slot;
    uint32_t len;
    uint32_t pad;
    uint64_t check;
    uint8_t payload[32];
};

struct xb_rsp {
    uint64_t id;
    uint32_t status;
    uint32_t pad;
};

_Static_assert(sizeof(struct xb_req) == 64, "64-byte requests");
_Static_assert(sizeof(struct xb_rsp) == 16, "16-byte responses");

DEFINE_RING_TYPES(xb, struct xb_req, struct xb_rsp);

struct xb_front {
    xb_front_ring_t ring;
    uint64_t next_id;
};

struct xb_front_args {
    void *ring;
    uint64_t ring_bytes;
    unsigned char *data;
    uint64_t nslots;
    int32_t ev_wait;
    int32_t ev_notify;
    uint32_t spin;
    uint32_t mode;
    uint64_t max_ops;
    uint64_t budget_ns;
    uint64_t *lat;
    uint64_t lat_cap;
};

struct xb_front_out {
    uint64_t ops;
    uint64_t notifies;
    uint64_t errors;
    uint64_t elapsed_ns;
    uint64_t nlat;
    uint64_t pushes;
};

struct xb_back_args {
    void *ring;
    uint64_t ring_bytes;
    unsigned char *data;
    uint64_t nslots;
    int32_t ev_wait;
    int32_t ev_notify;
    uint32_t spin;
    uint32_t pad;
    uint64_t *notify_counter;
    uint64_t *error_counter;
};

static inline void cpu_relax(void) { __asm__ __volatile__("pause" : : : "memory"); }

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ev_notify(int fd)
{
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(fd, &one, sizeof(one));
        if (n == (ssize_t)sizeof(one))
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static int ev_wait(int fd)
{
    uint64_t v;
    for (;;) {
        ssize_t n = read(fd, &v, sizeof(v));
        if (n == (ssize_t)sizeof(v))
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

size_t xb_c_front_size(void) { return sizeof(struct xb_front); }

int xb_c_front_init(struct xb_front *f, void *ring, uint64_t bytes)
{
    xb_sring_t *s = ring;
    XEN_FRONT_RING_INIT(&f->ring, s, bytes);
    f->next_id = 0;
    return (int)RING_SIZE(&f->ring);
}

/* Waits until a response is on the ring: spins `spin` times, then arms
 * rsp_event and sleeps on the eventfd. */
static int front_wait(struct xb_front *f, const struct xb_front_args *a)
{
    int work;
    for (uint32_t i = 0; i < a->spin; i++) {
        if (RING_HAS_UNCONSUMED_RESPONSES(&f->ring))
            return 0;
        cpu_relax();
    }
    for (;;) {
        RING_FINAL_CHECK_FOR_RESPONSES(&f->ring, work);
        if (work)
            return 0;
        if (ev_wait(a->ev_wait))
            return -1;
    }
}

static void fill_buf(unsigned char *buf, uint64_t id)
{
    uint64_t *w = (uint64_t *)buf;
    for (unsigned i = 0; i < XB_BUF / 8; i++)
        w[i] = id + i;
}

static void put_request(struct xb_front *f, const struct xb_front_args *a, uint32_t op)
{
    struct xb_req *req = RING_GET_REQUEST(&f->ring, f->ring.req_prod_pvt);
    uint64_t id = f->next_id++;
    memset(req, 0, sizeof(*req));
    req->id = id;
    req->op = op;
    req->check = id * XB_GOLDEN;
    if (op == XB_OP_BULK) {
        uint32_t slot = f->ring.req_prod_pvt & (uint32_t)(a->nslots - 1);
        fill_buf(a->data + (size_t)slot * XB_BUF, id);
        req->slot = slot;
        req->len = XB_BUF;
    }
    f->ring.req_prod_pvt++;
}

/* Takes every response on the ring; returns how many, or -1 for a hostile
 * backend. `expect` is the id the next response must carry. */
static int take_responses(struct xb_front *f, uint64_t *expect, uint64_t *errors)
{
    RING_IDX rp = f->ring.sring->rsp_prod;
    int got = 0;
    xen_rmb(); /* read the responses only after reading rsp_prod */
    if (RING_RESPONSE_PROD_OVERFLOW(&f->ring, rp))
        return -1;
    while (f->ring.rsp_cons != rp) {
        struct xb_rsp rsp;
        RING_COPY_RESPONSE(&f->ring, f->ring.rsp_cons, &rsp);
        f->ring.rsp_cons++;
        if (rsp.id != *expect || rsp.status != 0)
            (*errors)++;
        (*expect)++;
        got++;
    }
    return got;
}

int xb_c_front_run(struct xb_front *f, const struct xb_front_args *a, struct xb_front_out *o)
{
    uint64_t max = a->max_ops, sent = 0, done = 0, next_check = 256;
    uint64_t expect = f->next_id;
    uint32_t op = a->mode == XB_MODE_BULK ? XB_OP_BULK : XB_OP_DATA;
    int notify;
    memset(o, 0, sizeof(*o));

    if (a->mode == XB_MODE_STOP || a->mode == XB_MODE_LAT) {
        if (a->mode == XB_MODE_STOP)
            max = 1;
        uint64_t start = now_ns(), deadline = start + a->budget_ns;
        for (sent = 0; sent < max; sent++) {
            uint64_t t0 = now_ns();
            /* At least one sample, however late this phase started. */
            if (a->mode == XB_MODE_LAT && ((sent > 0 && t0 > deadline) || sent >= a->lat_cap))
                break;
            put_request(f, a, a->mode == XB_MODE_STOP ? XB_OP_STOP : XB_OP_DATA);
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&f->ring, notify);
            if (notify) {
                if (ev_notify(a->ev_notify))
                    return -1;
                o->notifies++;
            }
            for (;;) {
                int got = take_responses(f, &expect, &o->errors);
                if (got < 0)
                    return -1;
                if (got > 0)
                    break;
                if (front_wait(f, a))
                    return -1;
            }
            if (a->mode == XB_MODE_LAT)
                a->lat[o->nlat++] = now_ns() - t0;
        }
        o->ops = sent;
        o->elapsed_ns = now_ns() - start;
        return 0;
    }

    uint64_t start = now_ns(), deadline = start + a->budget_ns;
    while (done < max) {
        int pushed = 0;
        while (sent < max && !RING_FULL(&f->ring)) {
            put_request(f, a, op);
            sent++;
            pushed = 1;
        }
        if (pushed) {
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&f->ring, notify);
            o->pushes++;
            if (notify) {
                if (ev_notify(a->ev_notify))
                    return -1;
                o->notifies++;
            }
        }
        int got = take_responses(f, &expect, &o->errors);
        if (got < 0)
            return -1;
        done += (uint64_t)got;
        if (done >= max)
            break;
        if (sent >= next_check) {
            next_check += 256;
            if (now_ns() > deadline)
                max = sent; /* stop sending, drain what is in flight */
        }
        if (got == 0 && (sent >= max || RING_FULL(&f->ring)))
            if (front_wait(f, a))
                return -1;
    }
    o->ops = done;
    o->elapsed_ns = now_ns() - start;
    return 0;
}

static uint32_t check_request(const struct xb_req *req, const struct xb_back_args *a,
                              unsigned char *buf)
{
    switch (req->op) {
    case XB_OP_DATA:
    case XB_OP_STOP:
        return req->check == req->id * XB_GOLDEN ? 0 : 1;
    case XB_OP_BULK: {
        if (req->check != req->id * XB_GOLDEN || req->slot >= a->nslots || req->len != XB_BUF)
            return 1;
        /* Copy once out of the shared page, then check the copy. */
        memcpy(buf, a->data + (size_t)req->slot * XB_BUF, XB_BUF);
        const uint64_t *w = (const uint64_t *)buf;
        uint64_t bad = 0;
        for (unsigned i = 0; i < XB_BUF / 8; i++)
            bad |= w[i] ^ (req->id + i);
        return bad ? 1 : 0;
    }
    default:
        return 1;
    }
}

/* Serves requests until a STOP request; returns 0, or -1 for a hostile
 * frontend or a failed eventfd. */
int xb_c_back_run(const struct xb_back_args *a)
{
    xb_back_ring_t br;
    xb_sring_t *s = a->ring;
    static uint64_t buf[XB_BUF / 8];
    uint64_t notifies = 0, errors = 0;
    int notify, work, stop = 0;
    BACK_RING_INIT(&br, s, a->ring_bytes);

    for (;;) {
        RING_IDX rc = br.req_cons, rp = br.sring->req_prod;
        xen_rmb(); /* read the requests only after reading req_prod */
        if (RING_REQUEST_PROD_OVERFLOW(&br, rp))
            return -1;
        while (rc != rp && !RING_REQUEST_CONS_OVERFLOW(&br, rc)) {
            struct xb_req req;
            RING_COPY_REQUEST(&br, rc, &req);
            br.req_cons = ++rc;
            struct xb_rsp *rsp = RING_GET_RESPONSE(&br, br.rsp_prod_pvt);
            uint32_t status = check_request(&req, a, (unsigned char *)buf);
            rsp->id = req.id;
            rsp->status = status;
            rsp->pad = 0;
            br.rsp_prod_pvt++;
            if (status) {
                errors++;
                __atomic_store_n(a->error_counter, errors, __ATOMIC_RELAXED);
            }
            if (req.op == XB_OP_STOP)
                stop = 1;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&br, notify);
        if (notify) {
            if (ev_notify(a->ev_notify))
                return -1;
            notifies++;
            __atomic_store_n(a->notify_counter, notifies, __ATOMIC_RELAXED);
        }
        if (stop)
            return 0;
        /* Wait for requests: spin, then arm req_event and sleep. */
        int ready = 0;
        for (uint32_t i = 0; i < a->spin; i++) {
            if (RING_HAS_UNCONSUMED_REQUESTS(&br)) {
                ready = 1;
                break;
            }
            cpu_relax();
        }
        while (!ready) {
            RING_FINAL_CHECK_FOR_REQUESTS(&br, work);
            if (work)
                break;
            if (ev_wait(a->ev_wait))
                return -1;
        }
    }
}
