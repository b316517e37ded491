// The library's own long-lived descriptors (rings, eventfds, epoll sets,
// timerfds, the control socket, /proc/self/pagemap): kept out of the
// program's way.
//
// Responsible for: moving each one, when it is made, above the numbers a
// program normally gets (the kernel hands out the lowest free number, so a
// descriptor of ours at 4 would make the program's next open() return 9
// where a plain run returns 4), and recognising them, so that the
// program's close(), close_range() and closefrom() leave them open and
// answer as a plain run would (EBADF: the program never had them).
//
// Must not: allocate, take locks or call hooked symbols (raw system calls
// only); is_own() is called on every close().
#pragma once

namespace unblock::own_fds {

// Moves fd to the library's range (close-on-exec), closes the original and
// records the new number, which it returns. If it cannot be moved (no free
// number there, a limit below 64) fd itself is recorded and returned. -1
// if fd was closed meanwhile (a program's sweep racing the library's
// creation of it): the number is not the library's, the creation failed.
// Any thread.
int adopt(int fd);
// The library is about to close fd (one adopt() returned). Any thread.
void release(int fd);
// True if fd is one of the library's own. Any thread, async-signal-safe.
bool is_own(int fd);
// Calls close_range(2) (flags as given) on [first, last] minus the
// library's own descriptors: one call per gap. Returns 0 or -errno (the
// first failure). Any thread.
long close_range_except_own(unsigned first, unsigned last, unsigned flags);

// The epoll engine's duplicates of the program's fds (thousands, made and
// closed all the time) are the library's too: a bitmap over 65,536
// numbers from `base` (the engine's duplicate range; the first call sets
// it) marks them. mark_dup after making one, unmark_dup before closing it;
// outside the bitmap a duplicate is not protected. Any thread.
void set_dup_base(int base);
// A forked child whose runtime is off for good (sched::forget_after_fork):
// closes every descriptor still recorded, so the child - a pre-fork
// server's worker, say - holds none of the parent's rings or sets, as a
// plain child holds none. Only when nothing will use them again.
void close_all();
void mark_dup(int fd);
void unmark_dup(int fd);

}  // namespace unblock::own_fds
