//! The Linux `/dev/xen` ABI in `xenmq_runtime::linux::sys::abi` — every ioctl
//! number, struct size and field offset — against the kernel's uapi headers
//! (`xen/gntalloc.h`, `xen/gntdev.h`, `xen/evtchn.h`), and the privcmd
//! hypercall and `EVTCHNOP_status` against Xen's and libxen-dev's headers,
//! compiled by the system C compiler. Needs no Xen.

use std::collections::BTreeMap;
use std::process::Command;

use xenmq_runtime::linux::sys::abi;

#[test]
fn constants_and_layouts_match_the_c_headers() {
    let ours = abi::checked_constants();
    let mut src = String::from(
        "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <sys/ioctl.h>\n\
         typedef uint32_t grant_ref_t;\ntypedef uint16_t domid_t;\n\
         #include <xen/gntalloc.h>\n#include <xen/gntdev.h>\n#include <xen/evtchn.h>\n\
         #include <xen/xen.h>\n#include <xen/event_channel.h>\n#include <xen/sys/privcmd.h>\n\
         int main(void) {\n",
    );
    for (name, _) in &ours {
        src.push_str(&format!(
            "    printf(\"%s=%llu\\n\", \"{name}\", (unsigned long long)({name}));\n"
        ));
    }
    src.push_str("    return 0;\n}\n");
    let exe = xenmq_tests::cc::build_source("linux_abi", &src, &[]);
    let out = Command::new(&exe).output().expect("run the C ABI printer");
    assert!(out.status.success(), "C ABI printer failed");
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let theirs: BTreeMap<&str, u64> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k, v.parse().expect("a number")))
        .collect();
    assert_eq!(theirs.len(), ours.len(), "every constant printed once");
    let mismatches: Vec<String> = ours
        .iter()
        .filter(|(name, value)| theirs.get(name) != Some(value))
        .map(|(name, value)| format!("{name}: ours {value:#x}, C {:#x?}", theirs.get(name)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "ABI mismatches:\n{}",
        mismatches.join("\n")
    );
}
