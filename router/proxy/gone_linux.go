package proxy

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// goneWatcher notices clients that close their connection while their
// request waits on an upstream. fasthttp does not read a connection while
// its handler runs, so a client that leaves a non-streaming request, or a
// stream whose upstream has gone quiet, would go unnoticed until the
// upstream answered. One goroutine polls every watched socket together a
// few times a second (one poll(2) for all of them) and cancels the
// requests whose peer has hung up.
type goneWatcher struct {
	mu      sync.Mutex
	watched map[*reqState]int // request -> client socket
	running bool
	fds     []unix.PollFd
	reqs    []*reqState
}

// goneInterval is how often sockets are checked.
const goneInterval = 250 * time.Millisecond

func newGoneWatcher() *goneWatcher { return &goneWatcher{watched: map[*reqState]int{}} }

// watch starts watching fd for rs; a hang-up calls rs.clientGone.
func (w *goneWatcher) watch(rs *reqState, fd int) {
	if fd < 0 {
		return
	}
	w.mu.Lock()
	w.watched[rs] = fd
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go w.loop()
	}
}

// unwatch stops watching rs.
func (w *goneWatcher) unwatch(rs *reqState) {
	w.mu.Lock()
	delete(w.watched, rs)
	w.mu.Unlock()
}

func (w *goneWatcher) loop() {
	t := time.NewTicker(goneInterval)
	defer t.Stop()
	for range t.C {
		w.mu.Lock()
		if len(w.watched) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.fds, w.reqs = w.fds[:0], w.reqs[:0]
		for rs, fd := range w.watched {
			w.fds = append(w.fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP})
			w.reqs = append(w.reqs, rs)
		}
		// Polling under the lock keeps every fd open while it is polled:
		// unwatch, which runs before a connection can close, waits.
		n, err := unix.Poll(w.fds, 0)
		var gone []*reqState
		if err == nil && n > 0 {
			var peek [1]byte
			for i, p := range w.fds {
				if p.Revents == 0 {
					continue
				}
				if p.Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
					gone = append(gone, w.reqs[i])
					continue
				}
				// Readable: data a pipelining client sent, or the end of
				// the stream. A zero-byte peek is the end.
				m, _, rerr := unix.Recvfrom(int(p.Fd), peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
				if (m == 0 && rerr == nil) || (rerr != nil && rerr != unix.EAGAIN && rerr != unix.EINTR) {
					gone = append(gone, w.reqs[i])
				}
			}
		}
		// Cancel under the lock: once unwatch has returned, a request's
		// state may be reused, and it must not be cancelled then.
		for _, rs := range gone {
			delete(w.watched, rs)
			rs.clientGone()
		}
		w.mu.Unlock()
	}
}
