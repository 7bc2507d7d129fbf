use xenmq::prelude::*;

#[derive(XenstoreConfig)]
struct Features {
    feature_barrier: bool,
    #[xenstore(rename = "max-ring-page-order", default = 0, reserved)]
    order: u32,
}

fn main() {
    // The prelude brings the trait's methods into scope.
    let f = Features::read("/d", &mut |k| (k == "feature-barrier").then(|| "1".to_string())).unwrap();
    assert!(f.feature_barrier);
    assert_eq!(f.order, 0);
    assert_eq!(f.to_pairs().len(), 2);
}
