/*
 * Prints the layout of the Xen ring entries that tests/tests/layout.rs
 * ports, as the system's C compiler lays them out from the genuine
 * headers, then one sample entry of each as hex bytes.
 *
 *   layout <struct> sizeof <n> alignof <n>
 *   field <struct> <field> <offset> <size>
 *   bytes <struct> <hex>
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xen/io/blkif.h>
#include <xen/io/netif.h>

#define LAYOUT(s) \
    printf("layout %s sizeof %zu alignof %zu\n", #s, sizeof(struct s), _Alignof(struct s))
#define FIELD(s, f) \
    printf("field %s %s %zu %zu\n", #s, #f, offsetof(struct s, f), sizeof(((struct s *)0)->f))

static void bytes(const char *name, const void *p, size_t n)
{
    const unsigned char *b = p;
    printf("bytes %s ", name);
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    printf("\n");
}

int main(void)
{
    LAYOUT(blkif_request_segment);
    FIELD(blkif_request_segment, gref);
    FIELD(blkif_request_segment, first_sect);
    FIELD(blkif_request_segment, last_sect);

    LAYOUT(blkif_request);
    FIELD(blkif_request, operation);
    FIELD(blkif_request, nr_segments);
    FIELD(blkif_request, handle);
    FIELD(blkif_request, id);
    FIELD(blkif_request, sector_number);
    FIELD(blkif_request, seg);

    LAYOUT(blkif_response);
    FIELD(blkif_response, id);
    FIELD(blkif_response, operation);
    FIELD(blkif_response, status);

    LAYOUT(netif_tx_request);
    FIELD(netif_tx_request, gref);
    FIELD(netif_tx_request, offset);
    FIELD(netif_tx_request, flags);
    FIELD(netif_tx_request, id);
    FIELD(netif_tx_request, size);

    LAYOUT(netif_rx_response);
    FIELD(netif_rx_response, id);
    FIELD(netif_rx_response, offset);
    FIELD(netif_rx_response, flags);
    FIELD(netif_rx_response, status);

    struct blkif_request req;
    memset(&req, 0, sizeof(req));
    req.operation = BLKIF_OP_WRITE;
    req.nr_segments = 2;
    req.handle = 0x1234;
    req.id = 0x0102030405060708ULL;
    req.sector_number = 0x1122334455667788ULL;
    req.seg[0].gref = 42;
    req.seg[0].first_sect = 0;
    req.seg[0].last_sect = 7;
    req.seg[10].gref = 0xdeadbeef;
    req.seg[10].first_sect = 3;
    req.seg[10].last_sect = 5;
    bytes("blkif_request", &req, sizeof(req));

    struct blkif_response rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.id = 0x0102030405060708ULL;
    rsp.operation = BLKIF_OP_FLUSH_DISKCACHE;
    rsp.status = BLKIF_RSP_EOPNOTSUPP;
    bytes("blkif_response", &rsp, sizeof(rsp));

    struct netif_tx_request tx;
    memset(&tx, 0, sizeof(tx));
    tx.gref = 0xabcdef01;
    tx.offset = 100;
    tx.flags = NETTXF_csum_blank | NETTXF_more_data;
    tx.id = 77;
    tx.size = 1514;
    bytes("netif_tx_request", &tx, sizeof(tx));

    struct netif_rx_response rx;
    memset(&rx, 0, sizeof(rx));
    rx.id = 9;
    rx.offset = 14;
    rx.flags = NETRXF_data_validated;
    rx.status = -1;
    bytes("netif_rx_response", &rx, sizeof(rx));
    return 0;
}
