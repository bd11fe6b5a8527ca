/**
 * Preloaded (`node --import`) into every service the local stack spawns. The stack holds the
 * child's stdin open; if the stack dies without stopping its children (killed, crashed), stdin
 * ends and the child exits instead of lingering on its port. At once, not by draining: the
 * broker and the stores it would drain towards died with the stack, and so did the log pipe
 * (pino retries a write to a broken pipe forever, which would hang a graceful shutdown).
 */
const exitNow = () => process.kill(process.pid, 'SIGKILL');
process.stdin.on('end', exitNow);
process.stdin.on('error', exitNow);
process.stdin.resume();
// Watching stdin must not keep an otherwise finished process alive.
process.stdin.unref();
