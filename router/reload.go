package router

import (
	"context"
	"os"
	"time"
)

// watchedFiles lists the config file and every router.json it names.
func (s *Set) watchedFiles() []string {
	cfg := s.Config()
	files := []string{cfg.Path}
	for _, d := range cfg.ModelList {
		if d.Router != nil && d.Router.Path != "" {
			files = append(files, d.Router.Path)
		}
	}
	return files
}

// stamp is a file's identity for change detection.
type stamp struct {
	mod  time.Time
	size int64
}

func statAll(files []string) map[string]stamp {
	out := make(map[string]stamp, len(files))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			out[f] = stamp{fi.ModTime(), fi.Size()}
		}
	}
	return out
}

// Watch polls the config and its router.json files every interval and
// reloads the Set when one changes. After each reload attempt it calls done
// with the result (nil error on success); a failed reload keeps the old
// routers. Watch returns when ctx ends.
func (s *Set) Watch(ctx context.Context, interval time.Duration, done func(*Config, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := statAll(s.watchedFiles())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := statAll(s.watchedFiles())
		changed := len(now) != len(last)
		for f, st := range now {
			if last[f] != st {
				changed = true
			}
		}
		if !changed {
			continue
		}
		last = now
		err := s.Reload(ctx)
		if done != nil {
			done(s.Config(), err)
		}
		last = statAll(s.watchedFiles())
	}
}
