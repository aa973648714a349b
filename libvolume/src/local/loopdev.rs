//! Loop devices through /dev/loop-control and LOOP_CONFIGURE, so an image
//! file can be mounted like a block device.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` from <linux/loop.h>.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from <linux/loop.h>.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device. With auto-clear the kernel detaches it when the
/// last opener goes: keep this value until the device is mounted.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    _open: Option<File>,
}

impl LoopDevice {
    /// Wraps a device path, holding `open` (if any) until dropped.
    pub fn new(path: PathBuf, open: Option<File>) -> Self {
        LoopDevice { path, _open: open }
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Attaches `image` to a free loop device.
///
/// With `autoclear` the kernel detaches the device once its last user (the
/// mount, after this value is dropped) goes away, so an unmount is the
/// whole cleanup.
pub fn attach(image: &Path, autoclear: bool) -> Result<LoopDevice> {
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(|e| Error::sys("opening loop image", image, e))?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| Error::sys("opening", "/dev/loop-control", e))?;
    // Another process may take the free device between GET_FREE and
    // CONFIGURE (EBUSY): ask again a few times.
    let mut last = std::io::Error::other("no free loop device");
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(Error::sys(
                "finding a free loop device",
                "/dev/loop-control",
                std::io::Error::last_os_error(),
            ));
        }
        let dev_path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match OpenOptions::new().read(true).write(true).open(&dev_path) {
            Ok(d) => d,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let mut config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: if autoclear { LO_FLAGS_AUTOCLEAR } else { 0 },
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        let name = image.as_os_str().as_encoded_bytes();
        let len = name.len().min(63);
        config.info.lo_file_name[..len].copy_from_slice(&name[..len]);
        // SAFETY: config is a valid, initialised loop_config that outlives the call.
        let rc = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                LOOP_CONFIGURE,
                &config as *const LoopConfig,
            )
        };
        if rc == 0 {
            return Ok(LoopDevice::new(dev_path, Some(dev)));
        }
        last = std::io::Error::last_os_error();
        if last.raw_os_error() != Some(libc::EBUSY) {
            break;
        }
    }
    Err(Error::sys("attaching loop device for", image, last))
}

/// Detaches a loop device; a device that is already free is fine.
pub fn detach(device: &Path) -> Result<()> {
    let dev = File::open(device).map_err(|e| Error::sys("opening loop device", device, e))?;
    // SAFETY: LOOP_CLR_FD takes no argument.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENXIO) {
            return Err(Error::sys("detaching loop device", device, err));
        }
    }
    Ok(())
}
