package main

import (
	"context"
	"errors"
	"io"
)

// TODO(owner of model): replace this placeholder.
func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("model: not built yet")
}
