//! The block device across processes: a file served through persistent
//! grants on a negotiated two-page ring; out-of-range requests refused.

mod driver_support;

use driver_support::World;

#[test]
fn the_whole_disk_round_trips_through_persistent_grants() {
    let w = World::new("blk");
    let mut back = w.spawn(0, &["blk-backends"]);
    back.expect("ready");
    let guest = w.guest("xmblk");
    let mut front = w.spawn(guest, &["blk-frontend"]);
    assert_eq!(
        front.expect("connected"),
        "connected sectors=4096 flush=true"
    );
    // The frontend asked for two ring pages; the backend allows eight.
    let order = w.xs_read(&format!(
        "/local/domain/{guest}/device/xmblk/0/ring-page-order"
    ));
    assert_eq!(order.as_deref(), Some("1"));
    assert_eq!(
        front.expect("checked"),
        "checked intact=true past=-22 huge=-22"
    );
    front.expect("closed");
    let me = w.info(guest).expect("guest alive");
    assert_eq!((me.grants, me.maps, me.ports), (0, 0, 0), "{me:?}");
    front.close_stdin();
    front.wait_success();
}
