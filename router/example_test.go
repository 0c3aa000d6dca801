package router_test

import (
	"context"
	"fmt"
	"log"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/openai"
)

// The seed's SDK call, in Go: open a LiteLLM config, send a completion to
// the auto router, and see where it went. The config's upstreams are mock
// deployments; the routing runs on the real local model.
func ExampleClient_Completion() {
	ctx := context.Background()
	c, err := router.Open(ctx, "testdata/seed/config.yaml", router.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	resp, err := c.Completion(ctx, &openai.ChatRequest{
		Model:    "auto_router1",
		Messages: []openai.Message{openai.UserMessage("how to code a program in python")},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("route:", resp.Decision.Route)
	fmt.Println("model:", resp.Model)
	fmt.Println("answer:", resp.Text())
	// Output:
	// route: litellm-claude-35
	// model: litellm-claude-35
	// answer: Here is how to write that program.
}

// A streamed completion yields chunks as they arrive; Err tells a complete
// stream from one the upstream cut off.
func ExampleClient_Stream() {
	ctx := context.Background()
	c, err := router.Open(ctx, "testdata/seed/config.yaml", router.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	stream, err := c.Stream(ctx, &openai.ChatRequest{
		Model:    "auto_router1",
		Messages: []openai.Message{openai.UserMessage("litellm is great!")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	fmt.Println("route:", stream.Decision.Route)
	for stream.Next() {
		fmt.Print(stream.Current().Text())
	}
	fmt.Println()
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// route: litellm-gpt-4.1
	// LiteLLM is great indeed.
}

// Route dry-runs a decision: every candidate route's score against its
// threshold, and the fallback to the default model when none passes.
func ExampleClient_Route() {
	ctx := context.Background()
	c, err := router.Open(ctx, "testdata/seed/config.yaml", router.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	d, err := c.Route(ctx, "auto_router1", []openai.Message{openai.UserMessage("what is the capital of France?")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("model:", d.Model, "fallback:", d.Fallback, "reason:", d.Reason)
	// Output:
	// model: gpt-4o-mini fallback: true reason: below_threshold
}

// Nearest lists the utterances a prompt was closest to: why a decision
// went where it did.
func ExampleClient_Nearest() {
	ctx := context.Background()
	c, err := router.Open(ctx, "testdata/seed/config.yaml", router.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	near, err := c.Nearest(ctx, "auto_router1", "how to code a program in python", 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%s)\n", near[0].Utterance, near[0].Route)
	// Output:
	// how to code a program in [language] (litellm-claude-35)
}

// The same config built in Go, with no files: the seed's model_list as
// values and its routes given inline.
func ExampleNew() {
	threshold := 0.5
	cfg := &config.Config{ModelList: []config.Deployment{
		{ModelName: "auto_router1", Params: config.LiteLLMParams{
			Model: "auto_router/auto_router1",
			AutoRouterConfig: &config.RouterFile{Routes: []config.RouteSpec{
				{Name: "litellm-gpt-4.1", Utterances: []string{"litellm is great"}, ScoreThreshold: &threshold},
				{Name: "litellm-claude-35", Utterances: []string{"how to code a program in [language]"}, ScoreThreshold: &threshold},
			}},
			AutoRouterDefaultModel:   "gpt-4o-mini",
			AutoRouterEmbeddingModel: "minilm",
		}},
		{ModelName: "minilm", Params: config.LiteLLMParams{Model: "local/all-MiniLM-L6-v2"}, ModelInfo: config.ModelInfo{Quantized: true}},
		{ModelName: "litellm-gpt-4.1", Params: config.LiteLLMParams{Model: "mock/gpt-4.1"}},
		{ModelName: "litellm-claude-35", Params: config.LiteLLMParams{Model: "mock/claude-3-5-sonnet"}},
		{ModelName: "gpt-4o-mini", Params: config.LiteLLMParams{Model: "mock/gpt-4o-mini"}},
	}}
	ctx := context.Background()
	c, err := router.New(ctx, cfg, router.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	d, err := c.Route(ctx, "auto_router1", []openai.Message{openai.UserMessage("how to code a program in python")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Route)
	// Output:
	// litellm-claude-35
}
