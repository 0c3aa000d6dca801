// Command autorouter is a local-first LLM router: an OpenAI-compatible proxy
// that picks a model for every chat request by embedding the prompt in-process
// and scoring it against each route's example utterances.
//
// All behaviour lives in packages; this command parses flags, wires packages
// together and owns the process: environment, signals and exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand. run gets the arguments after the subcommand name.
type command struct {
	name, usage string
	run         func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the OpenAI-compatible proxy (the main job)", runServe},
		{"route", "print the routing decision for a prompt, or for stdin lines with --batch", runRoute},
		{"eval", "measure routing quality on labelled JSONL; --fit tunes thresholds", runEval},
		{"embed", "print embeddings for texts as JSON lines", runEmbed},
		{"model", "build the ONNX graphs from the fetched weights (used by scripts/setup.sh)", runModel},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "autorouter: %v\n", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks errors caused by how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr, cmds)
		if len(args) == 0 {
			return usageError{"no command given"}
		}
		return nil
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	printUsage(stderr, cmds)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func printUsage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "usage: autorouter <command> [flags]\n\ncommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nRun 'autorouter <command> -h' for a command's flags.")
}
