/*
 * One end of a ring over shared memory, written with the genuine ring.h
 * macros, for the interop tests (and the benchmarks): the other end is
 * xenmq's Rust ring in another process.
 *
 * usage: ring_peer front|back MEMFD PAGES START COUNT EVT_IN EVT_OUT
 *
 * MEMFD is an inherited memfd of PAGES 4 KiB pages holding a ring whose
 * shared header was initialised (indices at START) before we started.
 * EVT_IN/EVT_OUT are inherited non-blocking eventfds: the peer notifies us
 * on EVT_IN, we notify it on EVT_OUT. The frontend sends COUNT requests
 * and checks every response; the backend checks every request and answers.
 * At the end it prints one line:
 *   pushes=P notifies=N received=R
 * (notifications sent, and the sum of the counters read from EVT_IN).
 * Exits 1 on a protocol or payload error, 2 on a 10 s stall (lost wakeup).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ring_msg.h"

static uint64_t pushes, notifies, received;
static int evt_in, evt_out;

static void notify(void)
{
    uint64_t one = 1;
    notifies++;
    if (write(evt_out, &one, sizeof one) != sizeof one) {
        perror("eventfd write");
        exit(1);
    }
}

/* Sleeps until the peer notifies; a short spin first, then poll. */
static void wait_peer(volatile RING_IDX *prod, RING_IDX seen)
{
    for (int spin = 0; spin < 200; spin++) {
        if (*prod != seen)
            return;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
    struct pollfd p = {.fd = evt_in, .events = POLLIN};
    int n = poll(&p, 1, 10000);
    if (n == 0) {
        fprintf(stderr, "ring_peer: stalled 10 s waiting for the peer\n");
        exit(2);
    }
    if (n < 0) {
        perror("poll");
        exit(1);
    }
    uint64_t v;
    if (read(evt_in, &v, sizeof v) == sizeof v)
        received += v;
    else if (errno != EAGAIN) {
        perror("eventfd read");
        exit(1);
    }
}

static int run_front(xq_sring_t *s, size_t size, RING_IDX start, uint64_t count)
{
    xq_front_ring_t front;
    FRONT_RING_ATTACH(&front, s, start, size);
    uint64_t sent = 0, got = 0;
    while (got < count) {
        int progress = 0;
        while (sent < count && !RING_FULL(&front)) {
            xq_make_req(sent, RING_GET_REQUEST(&front, front.req_prod_pvt));
            front.req_prod_pvt++;
            sent++;
            progress = 1;
        }
        if (progress) {
            int do_notify;
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, do_notify);
            pushes++;
            if (do_notify)
                notify();
        }
        int more;
        do {
            RING_IDX rp = s->rsp_prod;
            xen_rmb(); /* responses before rp are visible */
            if (RING_RESPONSE_PROD_OVERFLOW(&front, rp)) {
                fprintf(stderr, "ring_peer: rsp_prod %u overflows\n", rp);
                return 1;
            }
            while (front.rsp_cons != rp) {
                struct xq_rsp rsp;
                RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);
                if (!xq_rsp_ok(got, &rsp)) {
                    fprintf(stderr, "ring_peer: bad response %" PRIu64 " (id %" PRIu64 ")\n",
                            got, rsp.id);
                    return 1;
                }
                front.rsp_cons++;
                got++;
                progress = 1;
            }
            RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
        } while (more);
        if (!progress && got < count)
            wait_peer(&s->rsp_prod, front.rsp_cons);
    }
    return 0;
}

static int run_back(xq_sring_t *s, size_t size, RING_IDX start, uint64_t count)
{
    xq_back_ring_t back;
    BACK_RING_ATTACH(&back, s, start, size);
    uint64_t done = 0;
    while (done < count) {
        RING_IDX rp = s->req_prod;
        xen_rmb(); /* requests before rp are visible */
        if (RING_REQUEST_PROD_OVERFLOW(&back, rp)) {
            fprintf(stderr, "ring_peer: req_prod %u overflows\n", rp);
            return 1;
        }
        int progress = 0;
        while (back.req_cons != rp) {
            struct xq_req req;
            RING_COPY_REQUEST(&back, back.req_cons, &req);
            back.req_cons++;
            if (!xq_req_ok(done, &req)) {
                fprintf(stderr, "ring_peer: bad request %" PRIu64 " (id %" PRIu64 ")\n",
                        done, req.id);
                return 1;
            }
            xq_make_rsp(&req, RING_GET_RESPONSE(&back, back.rsp_prod_pvt));
            back.rsp_prod_pvt++;
            done++;
            progress = 1;
        }
        if (progress) {
            int do_notify;
            RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, do_notify);
            pushes++;
            if (do_notify)
                notify();
        }
        int more;
        RING_FINAL_CHECK_FOR_REQUESTS(&back, more);
        if (!more && done < count)
            wait_peer(&s->req_prod, back.req_cons);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: %s front|back MEMFD PAGES START COUNT EVT_IN EVT_OUT\n", argv[0]);
        return 64;
    }
    int fd = atoi(argv[2]);
    size_t len = (size_t)strtoul(argv[3], NULL, 0) * 4096;
    RING_IDX start = (RING_IDX)strtoul(argv[4], NULL, 0);
    uint64_t count = strtoull(argv[5], NULL, 0);
    evt_in = atoi(argv[6]);
    evt_out = atoi(argv[7]);
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    xq_sring_t *s = mem;
    int rc;
    if (argv[1][0] == 'f')
        rc = run_front(s, len, start, count);
    else
        rc = run_back(s, len, start, count);
    printf("pushes=%" PRIu64 " notifies=%" PRIu64 " received=%" PRIu64 "\n", pushes, notifies,
           received);
    return rc;
}
