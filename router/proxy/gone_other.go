//go:build !linux

package proxy

// goneWatcher notices clients that hang up while their request waits; off
// Linux it watches nothing, and a gone client is noticed when a write to
// it fails.
type goneWatcher struct{}

func newGoneWatcher() *goneWatcher                { return &goneWatcher{} }
func (w *goneWatcher) watch(rs *reqState, fd int) {}
func (w *goneWatcher) unwatch(rs *reqState)       {}
