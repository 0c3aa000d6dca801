//go:build race

package testenv

// Race reports whether the race detector is on. It makes sync.Pool drop
// items and instruments code, so allocation counts only hold without it;
// scripts/test.sh runs the allocation tests a second time without -race.
const Race = true
