//! tapio: TAP devices for tapsim's Node side. `tap` is the plain Rust core; the napi
//! bindings below expose it as the `TapDevice` class (see engine/tap/tapio.ts).

pub mod tap;

#[cfg(feature = "node")]
mod node {
    use crate::tap;
    use napi::bindgen_prelude::*;
    use napi_derive::napi;
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicI32, Ordering};

    fn err(text: String) -> Error {
        Error::new(Status::GenericFailure, text)
    }

    /// One TAP device, owned: closing it (or dropping it) deletes the device.
    #[napi]
    pub struct TapDevice {
        /// Atomic so close() can take &self: napi refuses a &mut borrow while a JS call that
        /// borrowed the object (e.g. a pending waitReadable) is still around.
        fd: AtomicI32,
        wake_fd: RawFd,
        name: String,
        ifindex: u32,
        frame_bytes_max: u32,
    }

    #[napi]
    impl TapDevice {
        /// Creates the device (TUNSETIFF, IFF_TAP | IFF_NO_PI), sets the MTU if given, turns IPv6
        /// off on it (the host must inject nothing), and brings it up.
        #[napi(factory)]
        pub fn create(name: String, mtu: Option<u32>) -> Result<TapDevice> {
            let fd = tap::create(&name).map_err(err)?;
            let wake_fd = match tap::eventfd() {
                Ok(w) => w,
                Err(e) => {
                    unsafe { libc::close(fd) };
                    return Err(err(e));
                }
            };
            let mut dev = TapDevice { fd: AtomicI32::new(fd), wake_fd, name, ifindex: 0, frame_bytes_max: 1500 + 18 };
            if let Some(mtu) = mtu {
                tap::set_mtu(&dev.name, mtu).map_err(err)?;
                dev.frame_bytes_max = mtu + 18;
            }
            tap::disable_ipv6(&dev.name).map_err(err)?;
            tap::set_up(&dev.name).map_err(err)?;
            dev.ifindex = tap::ifindex(&dev.name).map_err(err)?;
            Ok(dev)
        }

        #[napi(getter)]
        pub fn name(&self) -> String {
            self.name.clone()
        }

        /// The raw file descriptor, e.g. to hand the device to a child process; -1 once closed.
        #[napi(getter)]
        pub fn fd(&self) -> i32 {
            self.fd.load(Ordering::SeqCst)
        }

        #[napi(getter)]
        pub fn ifindex(&self) -> u32 {
            self.ifindex
        }

        /// Reads up to `frames_max` frames into `out` (packed), their lengths into `lens` and
        /// CLOCK_MONOTONIC read times (ns) into `stamps_ns`. Never blocks; 0 when drained.
        #[napi]
        pub fn read_batch(&self, mut out: Uint8Array, mut lens: Uint32Array, mut stamps_ns: Float64Array, frames_max: u32) -> Result<u32> {
            let fd = self.open_fd()?;
            let (out, lens, stamps) = unsafe { (out.as_mut(), lens.as_mut(), stamps_ns.as_mut()) };
            let n = tap::read_batch(fd, out, lens, stamps, frames_max as usize, self.frame_bytes_max as usize).map_err(err)?;
            Ok(n as u32)
        }

        /// Writes `count` frames packed in `data` with lengths `lens`; returns how many went out
        /// before the device would block.
        #[napi]
        pub fn write_batch(&self, data: Uint8Array, lens: Uint32Array, count: u32) -> Result<u32> {
            let fd = self.open_fd()?;
            let n = tap::write_batch(fd, &data, &lens, count as usize).map_err(err)?;
            Ok(n as u32)
        }

        /// Resolves (from a libuv worker blocked in poll, not by polling from JS) when frames
        /// are ready: true; or false on timeout or close(). timeout_ms < 0 waits without limit.
        #[napi(ts_return_type = "Promise<boolean>")]
        pub fn wait_readable(&self, timeout_ms: i32) -> Result<AsyncTask<WaitTask>> {
            let fd = self.open_fd()?;
            Ok(AsyncTask::new(WaitTask { fd, wake_fd: self.wake_fd, timeout_ms }))
        }

        /// Deletes the device: wakes any waiter, then closes the fd (the device is not persistent).
        #[napi]
        pub fn close(&self) {
            let fd = self.fd.swap(-1, Ordering::SeqCst);
            if fd < 0 {
                return;
            }
            // Wake a waiter first; wake_fd stays open until drop, as a waiter may still poll it.
            tap::signal(self.wake_fd);
            unsafe { libc::close(fd) };
        }

        fn open_fd(&self) -> Result<RawFd> {
            let fd = self.fd.load(Ordering::SeqCst);
            if fd < 0 {
                return Err(err(format!("TAP {}: device is closed", self.name)));
            }
            Ok(fd)
        }
    }

    impl Drop for TapDevice {
        fn drop(&mut self) {
            self.close();
            unsafe { libc::close(self.wake_fd) };
        }
    }

    pub struct WaitTask {
        fd: RawFd,
        wake_fd: RawFd,
        timeout_ms: i32,
    }

    impl Task for WaitTask {
        type Output = bool;
        type JsValue = bool;

        fn compute(&mut self) -> Result<bool> {
            tap::wait_readable(self.fd, self.wake_fd, self.timeout_ms).map_err(err)
        }

        fn resolve(&mut self, _env: Env, output: bool) -> Result<bool> {
            Ok(output)
        }
    }

    /// Blocking write of all of `data` to a stream fd (poll while full). For lock-step
    /// protocols where the caller has nothing else to do meanwhile (the slice gate).
    #[napi]
    pub fn fd_write_all(fd: i32, data: Uint8Array, timeout_ms: i32) -> Result<()> {
        tap::write_all(fd, &data, timeout_ms).map_err(err)
    }

    /// Blocking read of exactly `len` bytes from a stream fd into `buf`; fewer only at EOF.
    #[napi]
    pub fn fd_read_exact(fd: i32, mut buf: Uint8Array, len: u32, timeout_ms: i32) -> Result<u32> {
        let n = tap::read_exact(fd, unsafe { buf.as_mut() }, len as usize, timeout_ms).map_err(err)?;
        Ok(n as u32)
    }

    /// Blocks until one of `fds` (stream fds) is readable or closed; returns the lowest such
    /// index. For collecting whichever of several concurrent exchanges finishes first.
    #[napi]
    pub fn fd_wait_any(fds: Int32Array, timeout_ms: i32) -> Result<u32> {
        let index = tap::wait_any(&fds, timeout_ms).map_err(err)?;
        Ok(index as u32)
    }

    /// CLOCK_MONOTONIC now, in ns (the clock frames are stamped with).
    #[napi]
    pub fn monotonic_ns() -> f64 {
        tap::monotonic_ns() as f64
    }
}
