// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The C half of a xenmq kernel module: what Rust cannot reach in a kernel
 * built without CONFIG_RUST (macros, static inlines, struct layouts, the
 * module and driver tables). Everything with a decision in it lives in the
 * Rust object; this file registers the xenbus driver, forwards its callbacks
 * and wraps Linux's exported Xen API one call at a time.
 *
 * Contexts: probe, otherend_changed and remove run in process context
 * (xenwatch or the registering task) and may sleep; each device's Rust
 * state is entered under the device's mutex only. Event channel interrupt
 * handlers run in hard-IRQ context: they set a flag, wake a wait queue and
 * queue the device's work item, nothing else.
 *
 * The module build (xenmq-kmod) defines XENMQ_DEVTYPE (the xenbus device
 * type, a string) and XENMQ_BACKEND (1 for a backend module, 0 for a
 * frontend module).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/interrupt.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <xen/xen.h>
#include <xen/xenbus.h>
#include <xen/events.h>
#include <xen/grant_table.h>
#include <xen/page.h>

#ifndef XENMQ_DEVTYPE
#error "XENMQ_DEVTYPE (the xenbus device type) must be defined by the build"
#endif
#ifndef XENMQ_BACKEND
#error "XENMQ_BACKEND (0 frontend, 1 backend) must be defined by the build"
#endif

/* One xenbus device this module drives. */
struct xenmq_dev {
	struct xenbus_device *xb;
	/* Serialises every entry into the device's Rust state. */
	struct mutex lock;
	/* Runs the Rust side's kick after an event channel interrupt. */
	struct work_struct work;
	/* The Rust state; NULL once removed. */
	void *rust;
};

/* One bound event channel. */
struct xenmq_chan {
	struct xenmq_dev *dev;
	int irq;
	evtchn_port_t port;
	/* Set by the interrupt handler, taken by poll/wait. */
	atomic_t pending;
	/* A lateeoi channel owes Xen an EOI once its event was consumed. */
	bool lateeoi;
	bool eoi_owed;
	wait_queue_head_t wq;
};

/* Implemented by the Rust object. */
extern int xenmq_rs_init(void);
extern void xenmq_rs_exit(void);
extern void *xenmq_rs_probe(struct xenmq_dev *dev, const char *nodename,
			    const char *otherend, u16 otherend_id);
extern void xenmq_rs_changed(void *rust, int state);
extern void xenmq_rs_kick(void *rust);
extern void xenmq_rs_remove(void *rust);

/* ---- memory, log ---- */

void *xenmq_k_alloc(size_t size, int zero)
{
	return kmalloc(size, GFP_KERNEL | (zero ? __GFP_ZERO : 0));
}

void *xenmq_k_realloc(void *ptr, size_t size)
{
	return krealloc(ptr, size, GFP_KERNEL);
}

void xenmq_k_free(void *ptr)
{
	kfree(ptr);
}

/* The Rust object panicked (a bug: peer input must never get here). BUG()
 * kills the current task with an Oops, releasing the CPU, instead of
 * spinning in the panic handler. */
void __noreturn xenmq_k_panic(const char *msg, size_t len)
{
	int n = len > INT_MAX ? INT_MAX : (int)len;

	pr_emerg("Rust panic: %.*s\n", n, msg);
	BUG();
}

void xenmq_k_log(int level, const char *msg, size_t len)
{
	int n = len > INT_MAX ? INT_MAX : (int)len;

	switch (level) {
	case 3:
		pr_err("%.*s\n", n, msg);
		break;
	case 4:
		pr_warn("%.*s\n", n, msg);
		break;
	default:
		pr_info("%.*s\n", n, msg);
		break;
	}
}

/* ---- Xenstore ---- */

static struct xenbus_transaction xenmq_tx(u32 id)
{
	struct xenbus_transaction t = { .id = id };

	return t;
}

/* Reads `path`; on success *out is a kmalloc'd buffer of *len bytes
 * (NUL-terminated past *len) for xenmq_k_free. */
int xenmq_k_xs_read(u32 tx, const char *path, char **out, unsigned int *len)
{
	void *v = xenbus_read(xenmq_tx(tx), path, "", len);

	if (IS_ERR(v))
		return PTR_ERR(v);
	*out = v;
	return 0;
}

int xenmq_k_xs_write(u32 tx, const char *path, const char *value)
{
	return xenbus_write(xenmq_tx(tx), path, "", value);
}

int xenmq_k_xs_mkdir(u32 tx, const char *path)
{
	return xenbus_mkdir(xenmq_tx(tx), path, "");
}

int xenmq_k_xs_rm(u32 tx, const char *path)
{
	return xenbus_rm(xenmq_tx(tx), path, "");
}

/* Lists `path`; on success *out is one kmalloc'd block (the pointer array
 * followed by the strings) for xenmq_k_free. */
int xenmq_k_xs_directory(u32 tx, const char *path, char ***out,
			 unsigned int *num)
{
	char **v = xenbus_directory(xenmq_tx(tx), path, "", num);

	if (IS_ERR(v))
		return PTR_ERR(v);
	*out = v;
	return 0;
}

int xenmq_k_xs_tx_start(u32 *tx)
{
	struct xenbus_transaction t;
	int rc = xenbus_transaction_start(&t);

	if (!rc)
		*tx = t.id;
	return rc;
}

int xenmq_k_xs_tx_end(u32 tx, int abort)
{
	return xenbus_transaction_end(xenmq_tx(tx), abort);
}

/* ---- the device ---- */

int xenmq_k_switch_state(struct xenmq_dev *dev, int state)
{
	return xenbus_switch_state(dev->xb, state);
}

void xenmq_k_dev_error(struct xenmq_dev *dev, int err, const char *msg)
{
	xenbus_dev_error(dev->xb, err, "%s", msg);
}

u16 xenmq_k_otherend_id(struct xenmq_dev *dev)
{
	return dev->xb->otherend_id;
}

/* Runs the device's kick again from the workqueue (more work was left). */
void xenmq_k_requeue(struct xenmq_dev *dev)
{
	schedule_work(&dev->work);
}

/* ---- grants ---- */

/* Allocates 2^order zeroed pages and grants each to `domid`; grefs gets
 * one reference per page. On failure nothing stays allocated or granted. */
int xenmq_k_share(u16 domid, unsigned int order, int readonly, void **vaddr,
		  u32 *grefs)
{
	unsigned int i, n = 1u << order;
	unsigned long addr;

	addr = __get_free_pages(GFP_KERNEL | __GFP_ZERO, order);
	if (!addr)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		int ref = gnttab_grant_foreign_access(
			domid, virt_to_gfn((void *)(addr + i * PAGE_SIZE)),
			readonly);
		if (ref < 0) {
			/* Never mapped by anyone yet: ending cannot fail. */
			while (i--)
				gnttab_end_foreign_access(grefs[i], NULL);
			free_pages(addr, order);
			return ref;
		}
		grefs[i] = ref;
	}
	*vaddr = (void *)addr;
	return 0;
}

/* Tries to end access to every page of a share; returns 0 when all ended
 * (the pages are then freed here), -EBUSY while the peer still maps one. */
int xenmq_k_try_unshare(void *vaddr, unsigned int order, u32 *grefs)
{
	unsigned int i, n = 1u << order;

	for (i = 0; i < n; i++) {
		if (grefs[i] == (u32)-1)
			continue;
		if (!gnttab_try_end_foreign_access(grefs[i]))
			return -EBUSY;
		grefs[i] = (u32)-1;
	}
	free_pages((unsigned long)vaddr, order);
	return 0;
}

/* Ends access to every page still granted; pages the peer still maps are
 * handed to Linux's deferred release (freed once the peer unmaps). */
void xenmq_k_unshare_deferred(void *vaddr, unsigned int order, u32 *grefs)
{
	unsigned int i, n = 1u << order;
	bool whole = true;

	for (i = 0; i < n; i++) {
		if (grefs[i] == (u32)-1)
			continue;
		if (gnttab_try_end_foreign_access(grefs[i])) {
			grefs[i] = (u32)-1;
			continue;
		}
		whole = false;
	}
	if (whole) {
		free_pages((unsigned long)vaddr, order);
		return;
	}
	/* Split so that each page can be released on its own. */
	split_page(virt_to_page(vaddr), order);
	for (i = 0; i < n; i++) {
		struct page *pg = virt_to_page(vaddr + i * PAGE_SIZE);

		if (grefs[i] == (u32)-1)
			__free_page(pg);
		else
			gnttab_end_foreign_access(grefs[i], pg);
	}
}

int xenmq_k_map(struct xenmq_dev *dev, u32 *grefs, unsigned int n,
		void **vaddr)
{
	return xenbus_map_ring_valloc(dev->xb, grefs, n, vaddr);
}

int xenmq_k_unmap(struct xenmq_dev *dev, void *vaddr)
{
	return xenbus_unmap_ring_vfree(dev->xb, vaddr);
}

/* ---- event channels ---- */

static irqreturn_t xenmq_irq(int irq, void *data)
{
	struct xenmq_chan *ch = data;

	atomic_set(&ch->pending, 1);
	wake_up(&ch->wq);
	schedule_work(&ch->dev->work);
	return IRQ_HANDLED;
}

int xenmq_k_alloc_evtchn(struct xenmq_dev *dev, u32 *port)
{
	evtchn_port_t p;
	int rc = xenbus_alloc_evtchn(dev->xb, &p);

	if (!rc)
		*port = p;
	return rc;
}

int xenmq_k_free_evtchn(struct xenmq_dev *dev, u32 port)
{
	return xenbus_free_evtchn(dev->xb, port);
}

/* Binds a port to an interrupt handler. `remote` selects the backend's
 * path: bind the peer's port interdomain, with late EOI (XSA-332). Else
 * `port` is a local port from xenmq_k_alloc_evtchn. */
struct xenmq_chan *xenmq_k_bind(struct xenmq_dev *dev, u32 port, int remote,
				int *err)
{
	struct xenmq_chan *ch = kzalloc(sizeof(*ch), GFP_KERNEL);
	int irq;

	if (!ch) {
		*err = -ENOMEM;
		return NULL;
	}
	ch->dev = dev;
	init_waitqueue_head(&ch->wq);
	if (remote) {
		ch->lateeoi = true;
		irq = bind_interdomain_evtchn_to_irqhandler_lateeoi(
			dev->xb, port, xenmq_irq, 0, KBUILD_MODNAME, ch);
	} else {
		irq = bind_evtchn_to_irqhandler(port, xenmq_irq, 0,
						KBUILD_MODNAME, ch);
	}
	if (irq < 0) {
		kfree(ch);
		*err = irq;
		return NULL;
	}
	ch->irq = irq;
	/* evtchn_from_irq is not exported: a backend channel keeps the
	 * peer's port, the one it was bound to. */
	ch->port = port;
	return ch;
}

u32 xenmq_k_chan_port(struct xenmq_chan *ch)
{
	return ch->port;
}

void xenmq_k_notify(struct xenmq_chan *ch)
{
	notify_remote_via_irq(ch->irq);
}

static void xenmq_eoi(struct xenmq_chan *ch)
{
	if (ch->eoi_owed) {
		ch->eoi_owed = false;
		xen_irq_lateeoi(ch->irq, 0);
	}
}

/* The driver is done with the events taken so far: a lateeoi channel's
 * interrupt is unmasked again. */
void xenmq_k_eoi(struct xenmq_chan *ch)
{
	xenmq_eoi(ch);
}

/* Takes the pending flag: 1 if an event had arrived. */
int xenmq_k_poll(struct xenmq_chan *ch)
{
	int was;

	xenmq_eoi(ch);
	was = atomic_xchg(&ch->pending, 0);
	if (was && ch->lateeoi)
		ch->eoi_owed = true;
	return was;
}

/* Sleeps until an event (1), the timeout (0) or a signal (-EINTR);
 * timeout_ms < 0 waits for ever. */
int xenmq_k_wait(struct xenmq_chan *ch, long timeout_ms)
{
	long rc;

	if (xenmq_k_poll(ch))
		return 1;
	if (timeout_ms < 0) {
		rc = wait_event_interruptible(ch->wq, atomic_read(&ch->pending));
		if (rc)
			return -EINTR;
	} else {
		rc = wait_event_interruptible_timeout(
			ch->wq, atomic_read(&ch->pending),
			msecs_to_jiffies(timeout_ms));
		if (rc < 0)
			return -EINTR;
		if (rc == 0)
			return 0;
	}
	return xenmq_k_poll(ch);
}

/* Unbinds and frees the channel; the port is closed with it. */
void xenmq_k_unbind(struct xenmq_chan *ch)
{
	xenmq_eoi(ch);
	unbind_from_irqhandler(ch->irq, ch);
	kfree(ch);
}

/* ---- the xenbus driver ---- */

static void xenmq_work(struct work_struct *work)
{
	struct xenmq_dev *dev = container_of(work, struct xenmq_dev, work);

	mutex_lock(&dev->lock);
	if (dev->rust)
		xenmq_rs_kick(dev->rust);
	mutex_unlock(&dev->lock);
}

static int xenmq_probe(struct xenbus_device *xb,
		       const struct xenbus_device_id *id)
{
	struct xenmq_dev *dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	void *rust;

	if (!dev)
		return -ENOMEM;
	dev->xb = xb;
	mutex_init(&dev->lock);
	INIT_WORK(&dev->work, xenmq_work);
	dev_set_drvdata(&xb->dev, dev);
	mutex_lock(&dev->lock);
	rust = xenmq_rs_probe(dev, xb->nodename, xb->otherend, xb->otherend_id);
	dev->rust = rust;
	mutex_unlock(&dev->lock);
	if (!rust) {
		dev_set_drvdata(&xb->dev, NULL);
		kfree(dev);
		return -ENOMEM;
	}
	return 0;
}

static void xenmq_changed(struct xenbus_device *xb, enum xenbus_state state)
{
	struct xenmq_dev *dev = dev_get_drvdata(&xb->dev);

	if (!dev)
		return;
	mutex_lock(&dev->lock);
	if (dev->rust)
		xenmq_rs_changed(dev->rust, state);
	mutex_unlock(&dev->lock);
}

static void xenmq_remove(struct xenbus_device *xb)
{
	struct xenmq_dev *dev = dev_get_drvdata(&xb->dev);

	if (!dev)
		return;
	mutex_lock(&dev->lock);
	if (dev->rust)
		xenmq_rs_remove(dev->rust);
	dev->rust = NULL;
	mutex_unlock(&dev->lock);
	/* The Rust side unbound every channel: no new work can be queued. */
	cancel_work_sync(&dev->work);
	dev_set_drvdata(&xb->dev, NULL);
	kfree(dev);
}

static const struct xenbus_device_id xenmq_ids[] = {
	{ XENMQ_DEVTYPE },
	{ "" }
};

static struct xenbus_driver xenmq_driver = {
	.ids = xenmq_ids,
	.probe = xenmq_probe,
	.otherend_changed = xenmq_changed,
	.remove = xenmq_remove,
};

static bool xenmq_registered;

static int __init xenmq_init(void)
{
	int rc;

	if (!xen_domain()) {
		pr_info("not running on Xen: no %s %s registered\n",
			XENMQ_DEVTYPE, XENMQ_BACKEND ? "backend" : "frontend");
		return 0;
	}
	rc = xenmq_rs_init();
	if (rc)
		return rc;
	rc = XENMQ_BACKEND ? xenbus_register_backend(&xenmq_driver) :
			     xenbus_register_frontend(&xenmq_driver);
	if (rc) {
		xenmq_rs_exit();
		return rc;
	}
	xenmq_registered = true;
	pr_info("%s %s registered\n", XENMQ_DEVTYPE,
		XENMQ_BACKEND ? "backend" : "frontend");
	return 0;
}

static void __exit xenmq_exit(void)
{
	if (!xenmq_registered)
		return;
	xenbus_unregister_driver(&xenmq_driver);
	xenmq_rs_exit();
}

module_init(xenmq_init);
module_exit(xenmq_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("xenmq " XENMQ_DEVTYPE " split driver");
