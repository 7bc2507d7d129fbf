/*
 * The test protocol the C peers and the Rust tests share: one request and
 * one response type, a ring of them built with the genuine ring.h macros,
 * and the functions that fill and check their payloads.
 */
#ifndef XENMQ_TESTS_RING_MSG_H
#define XENMQ_TESTS_RING_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * ring.h leaves the barriers to the includer (legacy interface version).
 * Full barrier: a locked no-op on the stack, as Linux's mb() on x86-64.
 * Read/write barriers: compiler barriers, enough on x86-64 (TSO).
 */
#if defined(__x86_64__)
#define mb() __asm__ __volatile__("lock; orl $0,(%%rsp)" ::: "memory", "cc")
#define rmb() __asm__ __volatile__("" ::: "memory")
#define wmb() __asm__ __volatile__("" ::: "memory")
#else
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#endif

#include <xen/io/ring.h>

struct xq_req {
    uint64_t id;
    uint64_t seed;
    uint32_t op;
    uint32_t len;
    uint8_t data[16];
};

struct xq_rsp {
    uint64_t id;
    uint64_t sum;
    int32_t status;
    uint32_t op;
    uint8_t echo[32];
};

DEFINE_RING_TYPES(xq, struct xq_req, struct xq_rsp);

_Static_assert(sizeof(struct xq_req) == 40, "request layout");
_Static_assert(sizeof(struct xq_rsp) == 56, "response layout");
_Static_assert(sizeof(union xq_sring_entry) == 56, "entry layout");
_Static_assert(offsetof(struct xq_sring, ring) == 64, "header layout");

/* The request the frontend sends as number `id`. */
static inline void xq_make_req(uint64_t id, struct xq_req *r)
{
    r->id = id;
    r->seed = id * 0x9e3779b97f4a7c15ull;
    r->op = (uint32_t)(id % 7);
    r->len = 16;
    for (unsigned i = 0; i < 16; i++)
        r->data[i] = (uint8_t)(id + i * 3);
}

/* The backend's answer, computed from the request it copied out. */
static inline void xq_make_rsp(const struct xq_req *q, struct xq_rsp *r)
{
    uint64_t sum = q->seed + q->op;
    for (unsigned i = 0; i < 16; i++)
        sum += q->data[i];
    r->id = q->id;
    r->sum = sum;
    r->status = (int32_t)(q->id % 5) - 2;
    r->op = q->op;
    for (unsigned i = 0; i < 32; i++)
        r->echo[i] = (uint8_t)(q->data[i % 16] ^ i);
}

static inline int xq_req_ok(uint64_t id, const struct xq_req *got)
{
    struct xq_req want;
    xq_make_req(id, &want);
    return memcmp(&want, got, sizeof want) == 0;
}

static inline int xq_rsp_ok(uint64_t id, const struct xq_rsp *got)
{
    struct xq_req q;
    struct xq_rsp want;
    xq_make_req(id, &q);
    xq_make_rsp(&q, &want);
    return memcmp(&want, got, sizeof want) == 0;
}

#endif
