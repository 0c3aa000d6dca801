package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/autorouter/autorouter/embed"
)

// defaultModelsDir is where local models are looked for: $AUTOROUTER_MODELS,
// else the per-user directory scripts/setup.sh links to its models.
func defaultModelsDir() string {
	d, _ := embed.DefaultModelsDir(os.LookupEnv)
	return d
}

// runtimeFlag adds --onnxruntime, the ONNX Runtime library, a process-wide
// choice; "" means $AUTOROUTER_ONNXRUNTIME, else <models>/onnxruntime.
func runtimeFlag(fs *flag.FlagSet) *string {
	return fs.String("onnxruntime", os.Getenv(embed.RuntimeEnv), "ONNX Runtime shared library (default $"+embed.RuntimeEnv+", else <models>/onnxruntime/libonnxruntime.so)")
}

func runEmbed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: autorouter embed [--model DIR] [--int8] TEXT...\n\nPrints {\"text\":...,\"embedding\":[...]} per line; reads one text per line from stdin when no TEXT is given.")
		fs.PrintDefaults()
	}
	model := fs.String("model", filepath.Join(defaultModelsDir(), "all-MiniLM-L6-v2"), "model directory (model.onnx + tokenizer.json)")
	int8 := fs.Bool("int8", false, "use the int8 model (model_int8.onnx)")
	maxLen := fs.Int("max-seq-len", 256, "tokens per text, [CLS] and [SEP] included")
	ort := runtimeFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	file := "model.onnx"
	if *int8 {
		file = "model_int8.onnx"
	}
	enc, err := embed.NewONNX(embed.ONNXOptions{ModelDir: *model, ModelFile: file, MaxSeqLen: *maxLen, RuntimeLib: *ort})
	if err != nil {
		return err
	}
	defer enc.Close()

	texts := fs.Args()
	if len(texts) == 0 {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			texts = append(texts, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	jw := json.NewEncoder(w)
	const chunk = 64
	vecs := make([]float32, chunk*enc.Dim())
	for start := 0; start < len(texts); start += chunk {
		batch := texts[start:min(start+chunk, len(texts))]
		dst := vecs[:len(batch)*enc.Dim()]
		if err := enc.Embed(ctx, batch, dst); err != nil {
			return err
		}
		for i, t := range batch {
			line := struct {
				Text      string    `json:"text"`
				Embedding []float32 `json:"embedding"`
			}{t, dst[i*enc.Dim() : (i+1)*enc.Dim()]}
			if err := jw.Encode(line); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
	}
	return nil
}
