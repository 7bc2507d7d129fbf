//! Kernel log output: `printk` through the shim, one line per call, with
//! the module's name as prefix (the shim's `pr_fmt`).
#![allow(unsafe_code)]

use core::fmt::{self, Write};

use crate::sys;

/// Log levels the shim maps to `pr_err`, `pr_warn` and `pr_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `KERN_ERR`.
    Error = 3,
    /// `KERN_WARNING`.
    Warn = 4,
    /// `KERN_INFO`.
    Info = 6,
}

/// A line of at most 255 bytes, formatted on the stack (no allocation, so
/// logging works when memory is short); longer lines are cut.
struct Line {
    buf: [u8; 255],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(self.len);
        let take = s.len().min(room);
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len.saturating_add(take)),
            s.as_bytes().get(..take),
        ) {
            dst.copy_from_slice(src);
            self.len = self.len.saturating_add(take);
        }
        Ok(())
    }
}

/// Reports a panic and ends the current task with `BUG()` (an Oops; the
/// CPU is not kept).
pub fn panic(args: fmt::Arguments<'_>) -> ! {
    let mut line = Line {
        buf: [0; 255],
        len: 0,
    };
    let _ = line.write_fmt(args);
    // SAFETY: as in `print`.
    unsafe { sys::xenmq_k_panic(line.buf.as_ptr().cast(), line.len) };
    // BUG() does not return; this loop is never reached.
    loop {
        core::hint::spin_loop();
    }
}

/// Prints one line at `level`.
pub fn print(level: Level, args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; 255],
        len: 0,
    };
    let _ = line.write_fmt(args);
    // SAFETY: the pointer and length describe initialised bytes of `line`,
    // which outlives the call; the shim prints them with "%.*s" (no NUL
    // needed, no format interpretation of the bytes).
    unsafe { sys::xenmq_k_log(level as i32, line.buf.as_ptr().cast(), line.len) }
}

/// `printk` at `KERN_INFO`, formatted like `format!`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::print($crate::log::Level::Info, format_args!($($arg)*)) };
}

/// `printk` at `KERN_WARNING`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::print($crate::log::Level::Warn, format_args!($($arg)*)) };
}

/// `printk` at `KERN_ERR`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::print($crate::log::Level::Error, format_args!($($arg)*)) };
}
