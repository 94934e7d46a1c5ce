//! The plain Rust core: TAP devices through /dev/net/tun, non-blocking batched frame I/O
//! with CLOCK_MONOTONIC stamps, and a readiness wait that a second file descriptor
//! (an eventfd) can interrupt. No napi here, so `cargo test --no-default-features` tests it.

use std::io;
use std::os::fd::RawFd;

/// Linux IFNAMSIZ includes the terminating NUL.
pub const IFNAME_BYTES_MAX: usize = 15;
/// Ethernet header; anything shorter cannot be a frame.
pub const FRAME_BYTES_MIN: usize = 14;
/// Largest frame a TAP with the largest MTU can carry (64 KiB payload + header).
pub const FRAME_BYTES_MAX: usize = 65_535 + 14;
/// Frames one batch call moves at most: bounds the time spent in one call.
pub const BATCH_FRAMES_MAX: usize = 4096;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` with the two members we use (name + flags / mtu / ifindex share the union).
#[repr(C)]
pub struct IfReq {
    pub name: [libc::c_char; 16],
    pub data: [u8; 24],
}

/// Checks a device name the way the kernel will: 1..=15 bytes, no '/', no whitespace, not "." or "..".
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > IFNAME_BYTES_MAX {
        return Err(format!("TAP name \"{name}\": must be 1 to {IFNAME_BYTES_MAX} bytes"));
    }
    if name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0) {
        return Err(format!("TAP name \"{name}\": no '/', ':', whitespace, \".\" or \"..\""));
    }
    Ok(())
}

pub fn ifreq(name: &str) -> IfReq {
    assert!(name.len() <= IFNAME_BYTES_MAX);
    let mut req = IfReq { name: [0; 16], data: [0; 24] };
    for (i, b) in name.bytes().enumerate() {
        req.name[i] = b as libc::c_char;
    }
    req
}

pub fn ifreq_with_flags(name: &str, flags: libc::c_short) -> IfReq {
    let mut req = ifreq(name);
    req.data[..2].copy_from_slice(&flags.to_ne_bytes());
    req
}

fn last_error(what: &str, name: &str) -> String {
    let err = io::Error::last_os_error();
    let hint = match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => " (needs root or CAP_NET_ADMIN)",
        Some(libc::EBUSY) => " (a device of that name is in use)",
        Some(libc::ENOENT) => " (is the tun module loaded? /dev/net/tun missing)",
        _ => "",
    };
    format!("TAP {name}: {what}: {err}{hint}")
}

/// Creates (or attaches to) the TAP device `name`; returns its non-blocking, close-on-exec fd.
/// The device is not persistent: closing the last fd deletes it.
pub fn create(name: &str) -> Result<RawFd, String> {
    validate_name(name)?;
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_error("open /dev/net/tun", name));
    }
    let mut req = ifreq_with_flags(name, IFF_TAP | IFF_NO_PI);
    if unsafe { libc::ioctl(fd, TUNSETIFF as _, &mut req) } < 0 {
        let err = last_error("TUNSETIFF", name);
        unsafe { libc::close(fd) };
        return Err(err);
    }
    Ok(fd)
}

/// A socket for interface ioctls (SIOCSIFFLAGS, SIOCSIFMTU, SIOCGIFINDEX).
fn control_socket(name: &str) -> Result<RawFd, String> {
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(last_error("socket", name));
    }
    Ok(s)
}

fn interface_ioctl(name: &str, request: libc::c_ulong, req: &mut IfReq, what: &str) -> Result<(), String> {
    let s = control_socket(name)?;
    let rc = unsafe { libc::ioctl(s, request as _, req as *mut IfReq) };
    let err = if rc < 0 { Some(last_error(what, name)) } else { None };
    unsafe { libc::close(s) };
    err.map_or(Ok(()), Err)
}

/// A host-side TAP must stay quiet: with IPv6 on, the kernel sends router solicitations and
/// MLD reports into the simulated network as soon as the link is up. Missing /proc entry
/// (IPv6 not built in) is fine.
pub fn disable_ipv6(name: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::write(&path, b"1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("TAP {name}: cannot disable IPv6 ({path}: {e})")),
    }
}

/// Brings the link up (IFF_UP), keeping the other flags.
pub fn set_up(name: &str) -> Result<(), String> {
    let mut req = ifreq(name);
    interface_ioctl(name, libc::SIOCGIFFLAGS, &mut req, "SIOCGIFFLAGS")?;
    let flags = libc::c_short::from_ne_bytes([req.data[0], req.data[1]]) | libc::IFF_UP as libc::c_short;
    req.data[..2].copy_from_slice(&flags.to_ne_bytes());
    interface_ioctl(name, libc::SIOCSIFFLAGS, &mut req, "SIOCSIFFLAGS")
}

pub fn set_mtu(name: &str, mtu: u32) -> Result<(), String> {
    if !(68..=65_535).contains(&mtu) {
        return Err(format!("TAP {name}: MTU {mtu} outside 68..65535"));
    }
    let mut req = ifreq(name);
    req.data[..4].copy_from_slice(&(mtu as libc::c_int).to_ne_bytes());
    interface_ioctl(name, libc::SIOCSIFMTU, &mut req, "SIOCSIFMTU")
}

pub fn ifindex(name: &str) -> Result<u32, String> {
    let mut req = ifreq(name);
    interface_ioctl(name, libc::SIOCGIFINDEX, &mut req, "SIOCGIFINDEX")?;
    Ok(libc::c_int::from_ne_bytes([req.data[0], req.data[1], req.data[2], req.data[3]]) as u32)
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Reads frames until the device is drained, `frames_max` frames are read, or `out` has no room
/// for one more frame of `frame_bytes_max` (the device's MTU + Ethernet header: a TAP read
/// into a smaller buffer would truncate the frame). Frames are packed back to back into
/// `out`; `lens[i]` and `stamps_ns[i]` describe frame i. Returns the number of frames.
pub fn read_batch(fd: RawFd, out: &mut [u8], lens: &mut [u32], stamps_ns: &mut [f64], frames_max: usize, frame_bytes_max: usize) -> Result<usize, String> {
    let frames_max = frames_max.min(lens.len()).min(stamps_ns.len()).min(BATCH_FRAMES_MAX);
    let frame_bytes_max = frame_bytes_max.clamp(FRAME_BYTES_MIN, FRAME_BYTES_MAX);
    let mut off = 0usize;
    let mut count = 0usize;
    while count < frames_max && out.len() - off >= frame_bytes_max {
        let n = unsafe { libc::read(fd, out[off..].as_mut_ptr() as *mut libc::c_void, out.len() - off) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) => break,
                Some(libc::EINTR) => continue,
                _ => return Err(format!("TAP read: {err}")),
            }
        }
        let len = n as usize;
        lens[count] = len as u32;
        stamps_ns[count] = monotonic_ns() as f64;
        off += len;
        count += 1;
    }
    Ok(count)
}

/// Writes frames packed in `data` (lengths in `lens`) until one would block. Returns how many went out.
pub fn write_batch(fd: RawFd, data: &[u8], lens: &[u32], count: usize) -> Result<usize, String> {
    let count = count.min(lens.len()).min(BATCH_FRAMES_MAX);
    let mut off = 0usize;
    for (i, &len) in lens[..count].iter().enumerate() {
        let len = len as usize;
        if !(FRAME_BYTES_MIN..=FRAME_BYTES_MAX).contains(&len) || off + len > data.len() {
            return Err(format!("TAP write: frame {i} has length {len} (or overruns the batch)"));
        }
        loop {
            let n = unsafe { libc::write(fd, data[off..].as_ptr() as *const libc::c_void, len) };
            if n >= 0 {
                break;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(i),
                Some(libc::EINTR) => continue,
                _ => return Err(format!("TAP write: {err}")),
            }
        }
        off += len;
    }
    Ok(count)
}

/// Blocks until `fd` is readable, `wake_fd` is signalled, or `timeout_ms` passes (-1: no limit).
/// Returns true if `fd` is readable.
pub fn wait_readable(fd: RawFd, wake_fd: RawFd, timeout_ms: i32) -> Result<bool, String> {
    let mut fds = [
        libc::pollfd { fd, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: wake_fd, events: libc::POLLIN, revents: 0 },
    ];
    loop {
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if rc >= 0 {
            return Ok(fds[0].revents & libc::POLLIN != 0);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("TAP poll: {err}"));
        }
    }
}

/// Writes all of `data` to a (possibly non-blocking) stream fd, waiting in poll when it is full.
pub fn write_all(fd: RawFd, data: &[u8], timeout_ms: i32) -> Result<(), String> {
    let mut off = 0usize;
    while off < data.len() {
        let n = unsafe { libc::write(fd, data[off..].as_ptr() as *const libc::c_void, data.len() - off) };
        if n > 0 {
            off += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => wait_fd(fd, libc::POLLOUT, timeout_ms)?,
            Some(libc::EINTR) => {}
            _ => return Err(format!("write: {err}")),
        }
    }
    Ok(())
}

/// Reads exactly `len` bytes into `buf` from a (possibly non-blocking) stream fd, waiting in
/// poll; returns fewer only at end of stream (the peer closed).
pub fn read_exact(fd: RawFd, buf: &mut [u8], len: usize, timeout_ms: i32) -> Result<usize, String> {
    let len = len.min(buf.len());
    let mut off = 0usize;
    while off < len {
        let n = unsafe { libc::read(fd, buf[off..].as_mut_ptr() as *mut libc::c_void, len - off) };
        if n > 0 {
            off += n as usize;
            continue;
        }
        if n == 0 {
            return Ok(off);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => wait_fd(fd, libc::POLLIN, timeout_ms)?,
            Some(libc::EINTR) => {}
            _ => return Err(format!("read: {err}")),
        }
    }
    Ok(off)
}

/// Most fds `wait_any` takes: the VMs of one grant set (bounded by the run's node count).
pub const WAIT_ANY_FDS_MAX: usize = 1024;

/// Blocks until one of `fds` is readable or closed (hung up, in error) and returns the lowest
/// such index; Err when `timeout_ms` passes first (-1: no limit).
pub fn wait_any(fds: &[RawFd], timeout_ms: i32) -> Result<usize, String> {
    if fds.is_empty() || fds.len() > WAIT_ANY_FDS_MAX {
        return Err(format!("wait_any: {} fds (1..={WAIT_ANY_FDS_MAX})", fds.len()));
    }
    let mut polled: Vec<libc::pollfd> = fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    loop {
        let rc = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, timeout_ms) };
        if rc > 0 {
            // A closed or invalid fd counts as ready: the read that follows reports it.
            let ready = libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
            return polled.iter().position(|p| p.revents & ready != 0).ok_or_else(|| "wait_any: poll woke with no fd ready".to_string());
        }
        if rc == 0 {
            return Err(format!("no fd readable within {timeout_ms} ms"));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("poll: {err}"));
        }
    }
}

fn wait_fd(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> Result<(), String> {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    loop {
        let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if rc > 0 {
            return Ok(());
        }
        if rc == 0 {
            return Err(format!("no progress within {timeout_ms} ms"));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("poll: {err}"));
        }
    }
}

pub fn eventfd() -> Result<RawFd, String> {
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(format!("eventfd: {}", io::Error::last_os_error()));
    }
    Ok(fd)
}

pub fn signal(fd: RawFd) {
    let one: u64 = 1;
    unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_the_kernel_does() {
        assert!(validate_name("tap0").is_ok());
        assert!(validate_name("abcdefghijklmno").is_ok());
        assert!(validate_name("abcdefghijklmnop").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("..").is_err());
    }

    #[test]
    fn ifreq_packs_name_and_flags() {
        let req = ifreq_with_flags("ts1", IFF_TAP | IFF_NO_PI);
        assert_eq!(&req.name[..4], &[b't' as libc::c_char, b's' as libc::c_char, b'1' as libc::c_char, 0]);
        assert_eq!(libc::c_short::from_ne_bytes([req.data[0], req.data[1]]), 0x1002);
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    #[test]
    fn wait_any_names_the_ready_fd() {
        let (mut a, mut b) = ([0; 2], [0; 2]);
        assert_eq!(unsafe { libc::pipe2(a.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
        assert_eq!(unsafe { libc::pipe2(b.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
        assert!(wait_any(&[a[0], b[0]], 0).is_err(), "nothing written: times out");
        signal_byte(b[1]);
        assert_eq!(wait_any(&[a[0], b[0]], 1000).unwrap(), 1);
        signal_byte(a[1]);
        assert_eq!(wait_any(&[a[0], b[0]], 1000).unwrap(), 0, "the lowest ready index");
        unsafe { libc::close(a[1]) };
        let mut byte = [0u8; 1];
        assert_eq!(read_exact(a[0], &mut byte, 1, 0).unwrap(), 1);
        assert_eq!(wait_any(&[a[0]], 1000).unwrap(), 0, "a closed peer counts as ready");
        assert!(wait_any(&[], 0).is_err());
        for fd in [a[0], b[0], b[1]] {
            unsafe { libc::close(fd) };
        }
    }

    fn signal_byte(fd: RawFd) {
        assert_eq!(unsafe { libc::write(fd, [1u8].as_ptr() as *const libc::c_void, 1) }, 1);
    }

    #[test]
    fn batches_round_trip_through_a_pipe() {
        // A pipe stands in for the TAP fd: same read/write calls, no privileges needed.
        let mut p = [0; 2];
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
        let frame = [7u8; 60];
        assert_eq!(write_batch(p[1], &frame, &[60], 1).unwrap(), 1);
        let mut out = vec![0u8; FRAME_BYTES_MAX * 2];
        let mut lens = [0u32; 4];
        let mut stamps = [0f64; 4];
        let n = read_batch(p[0], &mut out, &mut lens, &mut stamps, 4, 1518).unwrap();
        assert_eq!(n, 1);
        assert_eq!(lens[0], 60);
        assert_eq!(&out[..60], &frame[..]);
        assert!(stamps[0] > 0.0);
        assert!(write_batch(p[1], &frame, &[10], 1).is_err(), "a 10-byte frame is refused");
        unsafe {
            libc::close(p[0]);
            libc::close(p[1]);
        }
    }

    #[test]
    fn wait_returns_when_woken() {
        let mut p = [0; 2];
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
        let wake = eventfd().unwrap();
        signal(wake);
        assert!(!wait_readable(p[0], wake, 5000).unwrap(), "woken, nothing to read");
        unsafe { libc::write(p[1], [1u8].as_ptr() as *const libc::c_void, 1) };
        assert!(wait_readable(p[0], wake, 5000).unwrap());
    }
}
