/*
 * cases.h: the constructs of xenmq port's parser in one header, beside
 * the real ones (this comment is the module's docs).
 */
#ifndef CASES_H
#define CASES_H

#include <stdint.h>
#include <xen/io/ring.h>

/* An opcode enum, carried in a message below. */
enum cases_op {
    CASES_OP_READ = 0,
    CASES_OP_WRITE,       /* the next value */
    CASES_OP_FLUSH = 0x10,
};

#define CASES_MAX 4
#define CASES_FLAG_A (1U << 0)
#define CASES_NAME "cases-ring"
#define cases_handle_t uint16_t
#define CASES_TWICE(x) ((x) * 2)

typedef uint32_t cases_ref_t;

struct cases_seg {
    cases_ref_t ref;
    uint8_t first, last;  /* both documented */
};

/* The request. */
struct cases_request {
    uint8_t type;             /* keyword name */
#define CASES_TYPE_A 1
    cases_handle_t handle;
    uint64_t id;
    enum cases_op op;
    union {
        struct {
            uint16_t a;
            uint8_t b;
        } small;
        uint64_t wide;
        uint8_t raw[12];
    } u;
    struct cases_seg seg[CASES_MAX];
    uint16_t grid[2][3];
#ifdef __i386__
    uint32_t i386_only;
#endif
};

struct cases_response {
    uint64_t id;
    int16_t status;
};

struct cases_page {
    uint32_t count;
    uint8_t flag;
    uint32_t refs[];
};

/* A directory of segments that follow it. */
struct cases_dir {
    uint16_t n;
    struct cases_seg segs[];
};

DEFINE_RING_TYPES(cases, struct cases_request, struct cases_response);

#define CASES_RING_SLOTS __CONST_RING_SIZE(cases, 4096)

#endif /* CASES_H */
