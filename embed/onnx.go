package embed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// ONNXOptions configures a local ONNX encoder. Zero values mean the defaults.
type ONNXOptions struct {
	// ModelDir holds the model file and tokenizer.json: the directory
	// scripts/setup.sh builds (models/all-MiniLM-L6-v2) or any
	// sentence-transformers ONNX export.
	ModelDir string
	// ModelFile is the graph inside ModelDir: "model.onnx" (fp32, default)
	// or "model_int8.onnx" (dynamically quantised, faster).
	ModelFile string
	// RuntimeLib is the ONNX Runtime shared library, a process-wide
	// choice: every encoder of a process runs on one. Default: the library
	// already loaded, else <ModelDir>/../onnxruntime/libonnxruntime.so,
	// where setup puts it beside the model.
	RuntimeLib string
	// IntraOpThreads is the threads one inference may use. Default 1, which
	// gives the best throughput when many requests embed concurrently.
	IntraOpThreads int
	// MaxSeqLen caps tokens per text, [CLS] and [SEP] included; longer texts
	// are truncated. Default 256, the length all-MiniLM-L6-v2 was trained on.
	MaxSeqLen int
	// MaxBatch is the most texts one inference runs; larger inputs are split.
	// Default 32.
	MaxBatch int
}

// ONNX is the in-process sentence encoder: tokenizer, ONNX Runtime session,
// mean pooling over the attention mask and L2 normalisation. It is safe for
// concurrent use.
type ONNX struct {
	tok       *Tokenizer
	session   *ort.DynamicAdvancedSession
	options   *ort.SessionOptions
	typeIDs   bool // the graph takes token_type_ids
	pooled    bool // the graph outputs sentence_embedding, already pooled
	dim       int
	maxBatch  int
	modelID   string
	modelPath string
	// ready is closed once session creation ends; openErr is its error.
	// Neither session nor options may be read before.
	ready   chan struct{}
	openErr error

	// bufs is a free list of *onnxBuffers; each Embed call takes one for
	// its lifetime. It is a bounded channel, not a sync.Pool, because the
	// buffers hold ONNX Runtime tensors that must be destroyed, not left
	// to the garbage collector.
	bufs chan *onnxBuffers

	closeOnce sync.Once
}

var _ Encoder = (*ONNX)(nil)
var _ Identifier = (*ONNX)(nil)
var _ io.Closer = (*ONNX)(nil)

// onnxBuffers are the per-call scratch slices, reused across calls.
type onnxBuffers struct {
	ids, mask, types []int64
	out              []float32
	tokens           []int64
	offsets          []int
	order            []int // text indices sorted by token count
	cost             []int // planRuns scratch
	cuts             []int // run boundaries in order
	// tensors are ONNX Runtime tensors over ids, mask, types and out, by
	// batch shape, so that a run of a shape seen before creates none
	// (about ten allocations a run otherwise).
	tensors map[[2]int]*runTensors
}

// runTensors are the input and output tensors of one batch shape, over
// the buffers' memory as it was when they were made.
type runTensors struct {
	in   [3]ort.Value
	nIn  int
	out  ort.Value
	data [4]unsafe.Pointer // the buffers' backing arrays they wrap
}

func (t *runTensors) destroy() {
	for _, v := range t.in[:t.nIn] {
		v.Destroy()
	}
	t.out.Destroy()
}

// destroy frees every cached tensor.
func (b *onnxBuffers) destroy() {
	for k, t := range b.tensors {
		t.destroy()
		delete(b.tensors, k)
	}
}

// maxCachedShapes bounds the tensors one buffer set keeps.
const maxCachedShapes = 512

// getBufs takes a buffer set from the free list, or makes one.
func (e *ONNX) getBufs() *onnxBuffers {
	select {
	case b := <-e.bufs:
		return b
	default:
		return new(onnxBuffers)
	}
}

// putBufs gives a buffer set back, destroying it when the list is full.
func (e *ONNX) putBufs(b *onnxBuffers) {
	select {
	case e.bufs <- b:
	default:
		b.destroy()
	}
}

// NewONNX loads the tokenizer and model in opts.ModelDir and starts an ONNX
// Runtime session. Close releases it.
func NewONNX(opts ONNXOptions) (*ONNX, error) {
	if opts.ModelDir == "" {
		return nil, errors.New("onnx encoder: no model directory given")
	}
	if opts.ModelFile == "" {
		opts.ModelFile = "model.onnx"
	}
	if opts.IntraOpThreads <= 0 {
		opts.IntraOpThreads = 1
	}
	if opts.MaxSeqLen <= 0 {
		opts.MaxSeqLen = 256
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 32
	}
	modelPath := filepath.Join(opts.ModelDir, opts.ModelFile)
	if _, err := os.Stat(modelPath); err != nil {
		return nil, fmt.Errorf("onnx encoder: model %s: %w (run scripts/setup.sh, or point model_path at a sentence-transformers ONNX directory with model.onnx and tokenizer.json)", modelPath, err)
	}
	tok, err := LoadTokenizer(filepath.Join(opts.ModelDir, "tokenizer.json"), opts.MaxSeqLen)
	if err != nil {
		return nil, fmt.Errorf("onnx encoder: %w", err)
	}
	if err := acquireRuntime(opts.RuntimeLib, RuntimeLibIn(filepath.Dir(filepath.Clean(opts.ModelDir)))); err != nil {
		return nil, fmt.Errorf("onnx encoder: %w", err)
	}
	e := &ONNX{tok: tok, maxBatch: opts.MaxBatch, modelPath: modelPath, ready: make(chan struct{})}
	inputNames, output, err := e.inspect(modelPath)
	if err != nil {
		releaseRuntime()
		return nil, fmt.Errorf("onnx encoder: %s: %w", modelPath, err)
	}
	id, err := modelID(opts.ModelDir, opts.ModelFile, modelPath)
	if err != nil {
		releaseRuntime()
		return nil, fmt.Errorf("onnx encoder: %w", err)
	}
	e.modelID = id
	e.bufs = make(chan *onnxBuffers, 2*runtime.GOMAXPROCS(0)+2)
	// Creating the session takes most of a start with cached utterances
	// (0.4 s for the int8 MiniLM); the caller loads its cache and builds
	// its index meanwhile, and Ready or the first run waits for it.
	go func() {
		defer close(e.ready)
		if err := e.createSession(modelPath, inputNames, output, opts.IntraOpThreads); err != nil {
			e.openErr = fmt.Errorf("onnx encoder: %s: %w", modelPath, err)
		}
	}()
	return e, nil
}

// Ready waits until the ONNX Runtime session exists and returns the error
// creating it gave, if any. Runs wait for it too; a caller that reports
// readiness or wants load errors at start-up calls Ready first.
func (e *ONNX) Ready(ctx context.Context) error {
	select {
	case <-e.ready:
		return e.openErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// inspect checks the graph's inputs and outputs and returns the inputs to
// feed and the output to read.
func (e *ONNX) inspect(modelPath string) (inputNames []string, output string, err error) {
	ins, outs, err := graphIO(modelPath)
	if err != nil {
		return nil, "", fmt.Errorf("reading graph inputs and outputs: %w", err)
	}
	have := map[string]bool{}
	for _, in := range ins {
		have[in.Name] = true
	}
	if !have["input_ids"] || !have["attention_mask"] {
		return nil, "", fmt.Errorf("graph inputs %v: want BERT-family inputs input_ids and attention_mask (token_type_ids optional)", names(ins))
	}
	inputNames = []string{"input_ids", "attention_mask"}
	if have["token_type_ids"] {
		e.typeIDs = true
		inputNames = append(inputNames, "token_type_ids")
	}
	for _, o := range outs {
		switch o.Name {
		case "sentence_embedding":
			output, e.pooled = o.Name, true
		case "last_hidden_state":
			if output == "" {
				output = o.Name
			}
		}
		if o.Name == output {
			dims := o.Dims
			if len(dims) > 0 && dims[len(dims)-1] > 0 {
				e.dim = int(dims[len(dims)-1])
			}
		}
	}
	if output == "" {
		return nil, "", fmt.Errorf("graph outputs %v: want last_hidden_state or sentence_embedding", names(outs))
	}
	if e.dim <= 0 {
		return nil, "", fmt.Errorf("output %s has no fixed embedding dimension", output)
	}
	return inputNames, output, nil
}

// createSession creates the ONNX Runtime session; it runs once, in the
// background, and Close waits for it.
func (e *ONNX) createSession(modelPath string, inputNames []string, output string, threads int) error {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return fmt.Errorf("creating session options: %w", err)
	}
	e.options = so
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		return fmt.Errorf("setting intra-op threads: %w", err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return fmt.Errorf("setting inter-op threads: %w", err)
	}
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return fmt.Errorf("setting graph optimisation: %w", err)
	}
	s, err := ort.NewDynamicAdvancedSession(modelPath, inputNames, []string{output}, so)
	if err != nil {
		return fmt.Errorf("creating session: %w", err)
	}
	e.session = s
	return nil
}

func names(infos []graphValue) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

// modelID is the sha256 of the graph: from the builder's manifest.json when
// present (hashing 90 MB at every start would cost ~0.3 s), else computed.
func modelID(dir, file, path string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err == nil {
		var m struct {
			Files map[string]struct {
				SHA256 string `json:"sha256"`
			} `json:"files"`
		}
		if json.Unmarshal(b, &m) == nil && m.Files[file].SHA256 != "" {
			return "onnx:" + m.Files[file].SHA256, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing model: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing model %s: %w", path, err)
	}
	return "onnx:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Dim is the embedding size (384 for all-MiniLM-L6-v2).
func (e *ONNX) Dim() int { return e.dim }

// ModelID identifies the exact graph by its sha256.
func (e *ONNX) ModelID() string { return e.modelID }

// MaxBatch is the most texts one inference runs.
func (e *ONNX) MaxBatch() int { return e.maxBatch }

// Embed writes one unit vector per text into dst (len(texts)*Dim()).
// Texts are tokenized once, sorted by length and run in groups of similar
// length, so a batch of short and long texts does not pay for padding every
// short one to the longest.
func (e *ONNX) Embed(ctx context.Context, texts []string, dst []float32) error {
	if len(dst) != len(texts)*e.dim {
		return fmt.Errorf("onnx encoder: dst has %d floats, want %d (%d texts × %d)", len(dst), len(texts)*e.dim, len(texts), e.dim)
	}
	b := e.getBufs()
	defer e.putBufs(b)
	b.tokens, b.offsets, b.order = b.tokens[:0], append(b.offsets[:0], 0), b.order[:0]
	for i, t := range texts {
		var err error
		if b.tokens, err = e.tok.EncodeInto(b.tokens, t); err != nil {
			return fmt.Errorf("onnx encoder: %w", err)
		}
		b.offsets = append(b.offsets, len(b.tokens))
		b.order = append(b.order, i)
	}
	length := func(i int) int { return b.offsets[i+1] - b.offsets[i] }
	slices.SortStableFunc(b.order, func(x, y int) int { return length(x) - length(y) })
	b.cost, b.cuts = planRuns(b.cost, b.cuts, len(b.order), e.maxBatch, func(k int) int { return length(b.order[k]) })
	for g := 0; g+1 < len(b.cuts); g++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := e.embedBatch(b, b.order[b.cuts[g]:b.cuts[g+1]], dst); err != nil {
			return err
		}
	}
	return nil
}

// runOverheadTokens is the fixed cost of one ONNX run in units of padded
// tokens: with all-MiniLM-L6-v2 on one thread a run costs about as much as
// 10 (fp32) to 14 (int8) extra tokens. planRuns weighs fewer, more padded
// runs against more, tighter ones with it.
const runOverheadTokens = 12

// planRuns splits n texts, sorted by ascending token count lenAt(k), into
// runs of at most maxBatch consecutive texts minimising the total cost
// Σ(runOverheadTokens + size × longest), by dynamic programming. It returns
// the run boundaries [0, …, n] in cuts; cost is scratch. Both are reused.
func planRuns(cost, cuts []int, n, maxBatch int, lenAt func(k int) int) ([]int, []int) {
	cost = grow(cost, 2*(n+1))
	best, from := cost[:n+1], cost[n+1:]
	best[0] = 0
	for j := 1; j <= n; j++ {
		best[j], from[j] = -1, 0
		longest := lenAt(j - 1)
		for i := j - 1; i >= 0 && j-i <= maxBatch; i-- {
			c := best[i] + runOverheadTokens + (j-i)*longest
			if best[j] < 0 || c < best[j] {
				best[j], from[j] = c, i
			}
		}
	}
	cuts = cuts[:0]
	for j := n; j > 0; j = from[j] {
		cuts = append(cuts, j)
	}
	cuts = append(cuts, 0)
	slices.Reverse(cuts)
	return cost, cuts
}

// embedBatch pads the already tokenized texts idx to the longest, runs one
// inference and pools each into its slot of dst. All scratch lives in b.
func (e *ONNX) embedBatch(b *onnxBuffers, idx []int, dst []float32) error {
	seq := 0
	for _, i := range idx {
		seq = max(seq, b.offsets[i+1]-b.offsets[i])
	}
	n := len(idx)
	b.ids = grow(b.ids, n*seq)
	b.mask = grow(b.mask, n*seq)
	b.types = grow(b.types, n*seq)
	clear(b.ids)
	clear(b.mask)
	clear(b.types)
	for r, i := range idx {
		toks := b.tokens[b.offsets[i]:b.offsets[i+1]]
		copy(b.ids[r*seq:], toks)
		for j := range toks {
			b.mask[r*seq+j] = 1
		}
	}
	outLen := n * seq * e.dim
	if e.pooled {
		outLen = n * e.dim
	}
	b.out = grow(b.out, outLen)
	if err := e.runCached(b, n, seq, outLen); err != nil {
		return err
	}
	if e.pooled {
		for r, i := range idx {
			normalizeInto(dst[i*e.dim:(i+1)*e.dim], b.out[r*e.dim:(r+1)*e.dim])
		}
		return nil
	}
	for r, i := range idx {
		v := dst[i*e.dim : (i+1)*e.dim]
		clear(v)
		count := b.offsets[i+1] - b.offsets[i]
		for j := 0; j < count; j++ {
			row := b.out[(r*seq+j)*e.dim : (r*seq+j+1)*e.dim]
			for k, x := range row {
				v[k] += x
			}
		}
		// Mean then normalise: the 1/count factor cancels in the norm, but
		// keeping it avoids overflow on very long inputs.
		inv := 1 / float32(count)
		for k := range v {
			v[k] *= inv
		}
		normalizeInto(v, v)
	}
	return nil
}

// runCached runs one inference on the padded [n, seq] inputs in b, with
// tensors made once per shape and buffer memory.
func (e *ONNX) runCached(b *onnxBuffers, n, seq, outLen int) error {
	<-e.ready
	if e.openErr != nil {
		return e.openErr
	}
	data := [4]unsafe.Pointer{unsafe.Pointer(unsafe.SliceData(b.ids)), unsafe.Pointer(unsafe.SliceData(b.mask)),
		unsafe.Pointer(unsafe.SliceData(b.types)), unsafe.Pointer(unsafe.SliceData(b.out))}
	key := [2]int{n, seq}
	t := b.tensors[key]
	if t != nil && t.data != data {
		// A buffer grew since: these tensors wrap its old memory.
		b.destroy()
		t = nil
	}
	if t == nil {
		if len(b.tensors) >= maxCachedShapes {
			b.destroy()
		}
		var err error
		if t, err = e.newRunTensors(b, n, seq, outLen); err != nil {
			return err
		}
		t.data = data
		if b.tensors == nil {
			b.tensors = map[[2]int]*runTensors{}
		}
		b.tensors[key] = t
	}
	if err := e.session.Run(t.in[:t.nIn], []ort.Value{t.out}); err != nil {
		return fmt.Errorf("onnx encoder: running %s: %w", filepath.Base(e.modelPath), err)
	}
	return nil
}

func (e *ONNX) newRunTensors(b *onnxBuffers, n, seq, outLen int) (*runTensors, error) {
	t := &runTensors{}
	shape := ort.NewShape(int64(n), int64(seq))
	for _, d := range [][]int64{b.ids, b.mask, b.types} {
		if t.nIn == 2 && !e.typeIDs {
			break
		}
		v, err := ort.NewTensor(shape, d[:n*seq])
		if err != nil {
			destroyAll(t.in[:t.nIn])
			return nil, fmt.Errorf("onnx encoder: creating input tensor: %w", err)
		}
		t.in[t.nIn] = v
		t.nIn++
	}
	outShape := ort.NewShape(int64(n), int64(seq), int64(e.dim))
	if e.pooled {
		outShape = ort.NewShape(int64(n), int64(e.dim))
	}
	ot, err := ort.NewTensor(outShape, b.out[:outLen])
	if err != nil {
		destroyAll(t.in[:t.nIn])
		return nil, fmt.Errorf("onnx encoder: creating output tensor: %w", err)
	}
	t.out = ot
	return t, nil
}

// run executes one inference on padded [n, seq] inputs, writing the output
// into out, which must have the output's full size.
func (e *ONNX) run(ids, mask, types []int64, n, seq int, out []float32) error {
	<-e.ready
	if e.openErr != nil {
		return e.openErr
	}
	shape := ort.NewShape(int64(n), int64(seq))
	var values [3]ort.Value
	inputs := values[:0]
	for _, data := range [][]int64{ids, mask, types} {
		if len(inputs) == 2 && !e.typeIDs {
			break
		}
		t, err := ort.NewTensor(shape, data[:n*seq])
		if err != nil {
			destroyAll(inputs)
			return fmt.Errorf("onnx encoder: creating input tensor: %w", err)
		}
		inputs = append(inputs, t)
	}
	defer destroyAll(inputs)
	outShape := ort.NewShape(int64(n), int64(seq), int64(e.dim))
	if e.pooled {
		outShape = ort.NewShape(int64(n), int64(e.dim))
	}
	ot, err := ort.NewTensor(outShape, out)
	if err != nil {
		return fmt.Errorf("onnx encoder: creating output tensor: %w", err)
	}
	defer ot.Destroy()
	if err := e.session.Run(inputs, []ort.Value{ot}); err != nil {
		return fmt.Errorf("onnx encoder: running %s: %w", filepath.Base(e.modelPath), err)
	}
	return nil
}

func destroyAll(vs []ort.Value) {
	for _, v := range vs {
		v.Destroy()
	}
}

// Close releases the session and the runtime reference. Embed must not be
// called after Close.
func (e *ONNX) Close() error {
	var err error
	e.closeOnce.Do(func() {
		<-e.ready // the session may still be on its way
		for {
			select {
			case b := <-e.bufs:
				b.destroy()
				continue
			default:
			}
			break
		}
		if e.session != nil {
			err = e.session.Destroy()
		}
		if e.options != nil {
			e.options.Destroy()
		}
		releaseRuntime()
	})
	return err
}

// normalizeInto writes src scaled to unit length into dst (which may alias
// src). A zero vector stays zero.
func normalizeInto(dst, src []float32) {
	var s float64
	for _, x := range src {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		copy(dst, src)
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i, x := range src {
		dst[i] = x * inv
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// CountTokens is how many tokens text costs one run, [CLS] and [SEP]
// included, after truncation to the model's length.
func (e *ONNX) CountTokens(text string) int {
	b := e.getBufs()
	defer e.putBufs(b)
	var err error
	if b.tokens, err = e.tok.EncodeInto(b.tokens[:0], text); err != nil {
		return e.tok.MaxLen()
	}
	return len(b.tokens)
}

var _ TokenCounter = (*ONNX)(nil)

// Tokenizer returns the tokenizer the encoder uses, so callers can count
// tokens or pre-tokenize input for RunIDs.
func (e *ONNX) Tokenizer() *Tokenizer { return e.tok }

// RunIDs runs the graph once on a single pre-tokenized sequence (with its
// [CLS] and [SEP]) and writes the raw model output to dst, which must hold
// len(ids)*Dim() floats (Dim() for a pooled graph). It skips tokenizing,
// pooling and normalising: it is the floor that Embed's latency is measured
// against. dst is not retained.
func (e *ONNX) RunIDs(ids []int64, dst []float32) error {
	n := len(ids)
	if n == 0 {
		return fmt.Errorf("onnx encoder: RunIDs needs at least one token")
	}
	want := n * e.dim
	if e.pooled {
		want = e.dim
	}
	if len(dst) < want {
		return fmt.Errorf("onnx encoder: RunIDs: dst holds %d floats, want %d", len(dst), want)
	}
	mask := make([]int64, 2*n)
	for i := range n {
		mask[i] = 1
	}
	return e.run(ids, mask[:n], mask[n:], 1, n, dst[:want])
}

// Clip cuts text to maxTokens of this model's tokens; see Tokenizer.Clip.
func (e *ONNX) Clip(text string, maxTokens int, headTail bool) string {
	return e.tok.Clip(text, maxTokens, headTail)
}

var _ Clipper = (*ONNX)(nil)
