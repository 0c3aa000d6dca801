package main

import (
	"context"
	"errors"
	"io"
)

// TODO(owner of embed): replace this placeholder.
func runEmbed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("embed: not built yet")
}
