// Whether a host process still exists, for files and folders that name their owner's pid
// (run state, build locks, half-built snapshots): signal 0 checks without signalling.

/** False only when no process has this pid (ESRCH); one we may not signal (EPERM) is alive. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}
