//! Linux userspace on real Xen, through `/dev/xen`.
