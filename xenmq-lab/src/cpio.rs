//! A writer for the `newc` cpio format, the one Linux unpacks as an
//! initramfs (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//! Archives may be concatenated: the kernel (and libxc for a PV domU's
//! ramdisk) unpack them in order, later files replacing earlier ones.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// Writes one archive; everything is owned by root, mtime 0.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        Writer {
            out,
            ino: 0,
            written: 0,
        }
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file over 4 GiB"))?;
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        let mut head = String::with_capacity(110);
        head.push_str("070701");
        for f in fields {
            head.push_str(&format!("{f:08x}"));
        }
        self.put(head.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    /// A directory.
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, &[])
    }

    /// A regular file with `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Adds the tree under `root` (not `root` itself), in sorted order, with
    /// names prefixed by `prefix` (`""` or `"dir/"`).
    pub fn tree(&mut self, root: &Path, prefix: &str) -> io::Result<()> {
        let mut names: Vec<_> = fs::read_dir(root)?.collect::<Result<Vec<_>, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let path = e.path();
            let meta = fs::symlink_metadata(&path)?;
            let perm = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path)?;
                self.symlink(&name, &target.to_string_lossy())?;
            } else if meta.is_dir() {
                self.dir(&name, perm)?;
                self.tree(&path, &format!("{name}/"))?;
            } else if meta.is_file() {
                self.file(&name, perm, &fs::read(&path)?)?;
            }
        }
        Ok(())
    }

    /// Writes the trailer and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, &[])?;
        // The kernel reads archives in 512-byte blocks; pad like cpio(1).
        let n = ((512 - (self.written % 512)) % 512) as usize;
        self.put(&vec![0u8; n])?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut w = Writer::new(Vec::new());
        w.file("a", 0o755, b"hello").unwrap();
        let out = w.finish().unwrap();
        let head = std::str::from_utf8(&out[..110]).unwrap();
        assert!(head.starts_with("070701"));
        // mode field (2nd): regular file 0755
        assert_eq!(&head[14..22], "000081ed");
        // filesize (7th) and namesize (12th)
        assert_eq!(&head[6 + 6 * 8..6 + 7 * 8], "00000005");
        assert_eq!(&head[6 + 11 * 8..6 + 12 * 8], "00000002");
        // name "a\0" at 110, padded to 112, then data
        assert_eq!(&out[110..112], b"a\0");
        assert_eq!(&out[112..117], b"hello");
        assert_eq!(out.len() % 512, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("TRAILER!!!"));
    }
}
