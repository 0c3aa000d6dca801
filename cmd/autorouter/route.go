package main

import (
	"context"
	"errors"
	"io"
)

// TODO(owner of route): replace this placeholder.
func runRoute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("route: not built yet")
}
