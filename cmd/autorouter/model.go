package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/autorouter/autorouter/embed/modelbuild"
)

func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"model: want a subcommand: build or verify"}
	}
	switch args[0] {
	case "build":
		fs := flag.NewFlagSet("model build", flag.ContinueOnError)
		fs.SetOutput(stderr)
		src := fs.String("src", "models/all-MiniLM-L6-v2/src", "directory with config.json, tokenizer.json and the *.safetensors weights")
		out := fs.String("out", "models/all-MiniLM-L6-v2", "directory to write model.onnx, model_int8.onnx and manifest.json into")
		force := fs.Bool("force", false, "rebuild even when the outputs exist and verify")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		_, err := modelbuild.Build(ctx, modelbuild.Options{SrcDir: *src, OutDir: *out, Force: *force, Progress: stderr})
		if err != nil {
			return fmt.Errorf("model build: %w", err)
		}
		return nil
	case "verify":
		fs := flag.NewFlagSet("model verify", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dir := fs.String("dir", "models/all-MiniLM-L6-v2", "model directory with manifest.json")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		m, err := modelbuild.Verify(*dir)
		if err != nil {
			return fmt.Errorf("model verify: %w", err)
		}
		fmt.Fprintf(stdout, "%s: %d files verified (built by %s)\n", *dir, len(m.Files), m.Builder)
		return nil
	default:
		return usageError{fmt.Sprintf("model: unknown subcommand %q (want build or verify)", args[0])}
	}
}
