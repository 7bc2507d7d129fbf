//! The vkv driver across processes: values travel through the frontend's
//! persistent-grant pool, the backend's limits through Xenstore, and two
//! guests share one backend process without seeing each other's keys.

mod driver_support;

use driver_support::{field, World};

#[test]
fn put_get_delete_through_the_pool() {
    let w = World::new("vkv");
    let mut back = w.spawn(0, &["vkv-backends"]);
    back.expect("ready");
    let guest = w.guest("vkv");
    let mut front = w.spawn(guest, &["vkv-frontend", "300"]);
    // The backend's feature key reached the frontend's connect hook.
    assert_eq!(front.expect("connected"), "connected max-keys=4096");
    let checked = front.expect("checked");
    assert_eq!(field(&checked, "n"), 300);
    assert!(checked.contains("missing=true"), "{checked}");
    assert!(checked.contains("too_long=true"), "{checked}");
    assert!(checked.contains("too_big=true"), "{checked}");
    front.expect("closed");
    let me = w.info(guest).expect("guest alive");
    // The ring page, the 16 pool pages and the port are all given back.
    assert_eq!((me.grants, me.maps, me.ports), (0, 0, 0), "{me:?}");
    front.close_stdin();
    front.wait_success();
}

#[test]
fn two_guests_one_backend_process() {
    let w = World::new("vkv2");
    let mut back = w.spawn(0, &["vkv-backends"]);
    back.expect("ready");
    let (g1, g2) = (w.guest("vkv"), w.guest("vkv"));
    let mut f1 = w.spawn(g1, &["vkv-frontend", "200"]);
    let mut f2 = w.spawn(g2, &["vkv-frontend", "200"]);
    // Each guest's store is its own: both see exactly their 200 keys
    // (a shared map would make one's deletes the other's misses).
    for f in [&mut f1, &mut f2] {
        f.expect("connected");
        let checked = f.expect("checked");
        assert!(checked.contains("missing=true"), "{checked}");
        f.expect("closed");
        f.close_stdin();
        f.wait_success();
    }
    back.expect(&format!("connected {g1} 0 1"));
}
