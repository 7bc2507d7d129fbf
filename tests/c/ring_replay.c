/*
 * Replays a script of ring operations with the genuine ring.h macros, both
 * ends in this one process and one memory, and logs every result: the Rust
 * test runs the same script on xenmq's ring and compares the logs and the
 * final bytes of the shared pages.
 *
 * stdin: a first line "PAGES START", then one operation per line:
 *   p K  front produces up to K requests (stops when full)   -> "p N"
 *   P    front pushes requests                                 -> "P NOTIFY"
 *   g    front final check for responses                       -> "g WORK"
 *   d K  front consumes up to K responses                      -> "d N HASH"
 *   c K  back consumes up to K requests                        -> "c N HASH"
 *   r K  back answers up to K consumed requests                -> "r N"
 *   R    back pushes responses                                 -> "R NOTIFY"
 *   f    back final check for requests                         -> "f WORK"
 * stdout: one log line per operation, then "m " and the pages in hex.
 * HASH is FNV-1a over the bytes of the entries copied out.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ring_msg.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int main(void)
{
    unsigned pages;
    RING_IDX start;
    if (scanf("%u %u", &pages, &start) != 2 || pages == 0 || pages > 16)
        return 64;
    size_t len = (size_t)pages * 4096;
    void *mem = aligned_alloc(4096, len);
    if (!mem)
        return 1;
    memset(mem, 0xa5, len);
    xq_sring_t *s = mem;
    xq_front_ring_t front;
    xq_back_ring_t back;
    SHARED_RING_INIT(s);
    s->req_prod = s->rsp_prod = start;
    s->req_event = s->rsp_event = start + 1;
    FRONT_RING_ATTACH(&front, s, start, len);
    BACK_RING_ATTACH(&back, s, start, len);
    uint64_t next_req = 0;

    char op;
    while (scanf(" %c", &op) == 1) {
        unsigned k = 0, n = 0;
        int flag;
        uint64_t h = 0xcbf29ce484222325ull;
        if ((op == 'p' || op == 'd' || op == 'c' || op == 'r') && scanf("%u", &k) != 1)
            return 64;
        switch (op) {
        case 'p':
            for (; n < k && !RING_FULL(&front); n++) {
                xq_make_req(next_req++, RING_GET_REQUEST(&front, front.req_prod_pvt));
                front.req_prod_pvt++;
            }
            printf("p %u\n", n);
            break;
        case 'P':
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, flag);
            printf("P %d\n", flag);
            break;
        case 'g':
            RING_FINAL_CHECK_FOR_RESPONSES(&front, flag);
            printf("g %d\n", flag != 0);
            break;
        case 'd':
            for (; n < k && RING_HAS_UNCONSUMED_RESPONSES(&front); n++) {
                struct xq_rsp rsp;
                RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);
                front.rsp_cons++;
                h = fnv(h, &rsp, sizeof rsp);
            }
            printf("d %u %016" PRIx64 "\n", n, h);
            break;
        case 'c':
            for (; n < k && RING_HAS_UNCONSUMED_REQUESTS(&back); n++) {
                struct xq_req req;
                RING_COPY_REQUEST(&back, back.req_cons, &req);
                back.req_cons++;
                h = fnv(h, &req, sizeof req);
            }
            printf("c %u %016" PRIx64 "\n", n, h);
            break;
        case 'r':
            /* Answer request number rsp_prod_pvt - START, rebuilt from its id. */
            for (; n < k && back.rsp_prod_pvt != back.req_cons; n++) {
                struct xq_req q;
                xq_make_req(back.rsp_prod_pvt - start, &q);
                xq_make_rsp(&q, RING_GET_RESPONSE(&back, back.rsp_prod_pvt));
                back.rsp_prod_pvt++;
            }
            printf("r %u\n", n);
            break;
        case 'R':
            RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, flag);
            printf("R %d\n", flag);
            break;
        case 'f':
            RING_FINAL_CHECK_FOR_REQUESTS(&back, flag);
            printf("f %d\n", flag != 0);
            break;
        default:
            return 64;
        }
    }
    printf("m ");
    const uint8_t *b = mem;
    for (size_t i = 0; i < len; i++)
        printf("%02x", b[i]);
    printf("\n");
    free(mem);
    return 0;
}
