# asyncio's signal path in a few lines, run plain and under the preload
# (issue 16): a SIGALRM handler registered with signal.set_wakeup_fd on a
# self-pipe, a thread alive (the runtime runs), then select() on the pipe.
# The signal interrupts select; CPython's C handler writes the signal number
# to the pipe and select is retried with the same sets (PEP 475), which must
# find it readable. Preloaded it once came back with cleared sets and then
# looped on its worker forever (untimed) or until the timeout (timed).
import select
import signal
import socket
import threading
import time

stop = threading.Event()
helper = threading.Thread(target=stop.wait)
helper.start()
rsock, wsock = socket.socketpair()
rsock.setblocking(False)
wsock.setblocking(False)
signal.set_wakeup_fd(wsock.fileno())
signal.signal(signal.SIGALRM, lambda *args: None)

for timeout in (None, 30.0):
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    start = time.monotonic()
    ready, _, _ = select.select([rsock], [], [], timeout)
    quick = time.monotonic() - start < 10
    print(f"select(timeout={timeout}): readable={ready == [rsock]} quick={quick} byte={list(rsock.recv(16))}")

# poll, the other readiness call asyncio's loops use (PollSelector).
signal.setitimer(signal.ITIMER_REAL, 0.05)
p = select.poll()
p.register(rsock, select.POLLIN)
print("poll:", [(fd == rsock.fileno(), ev) for fd, ev in p.poll()], list(rsock.recv(16)))
stop.set()
helper.join()
