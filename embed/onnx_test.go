package embed

import (
	"bufio"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// repoRoot walks up from the test's directory to the one holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// modelDir is the model scripts/setup.sh builds. Tests fail, not skip, when
// it is missing: the README's test command always runs setup first.
func modelDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "models", "all-MiniLM-L6-v2")
	if _, err := os.Stat(filepath.Join(dir, "model.onnx")); err != nil {
		t.Fatalf("model not built: %v; run scripts/setup.sh", err)
	}
	return dir
}

func newTestONNX(t testing.TB, file string) *ONNX {
	t.Helper()
	e, err := NewONNX(ONNXOptions{ModelDir: modelDir(t), ModelFile: file})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	// The session loads in the background; benchmarks must not time that.
	if err := e.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

func embedAll(t testing.TB, e Encoder, texts ...string) [][]float32 {
	t.Helper()
	dst := make([]float32, len(texts)*e.Dim())
	if err := e.Embed(context.Background(), texts, dst); err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, len(texts))
	for i := range texts {
		out[i] = dst[i*e.Dim() : (i+1)*e.Dim()]
	}
	return out
}

func cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

var referenceSentences = []string{"The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."}

// referenceMatrix is the similarity matrix sentence-transformers publishes
// for all-MiniLM-L6-v2 on referenceSentences.
var referenceMatrix = [3][3]float64{{1, 0.6660, 0.1046}, {0.6660, 1, 0.1411}, {0.1046, 0.1411, 1}}

func TestONNXReferenceSimilarity(t *testing.T) {
	for _, tc := range []struct {
		file string
		tol  float64
	}{{"model.onnx", 2e-3}, {"model_int8.onnx", 0.02}} {
		t.Run(tc.file, func(t *testing.T) {
			e := newTestONNX(t, tc.file)
			if e.Dim() != 384 {
				t.Fatalf("Dim() = %d, want 384", e.Dim())
			}
			v := embedAll(t, e, referenceSentences...)
			for i := range v {
				for j := range v {
					if got := cosine(v[i], v[j]); math.Abs(got-referenceMatrix[i][j]) > tc.tol {
						t.Errorf("cos(%d,%d) = %.4f, want %.4f ± %g", i+1, j+1, got, referenceMatrix[i][j], tc.tol)
					}
				}
			}
		})
	}
}

func readSentences(t testing.TB) []string {
	f, err := os.Open("testdata/sentences.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func TestONNXInt8MatchesFP32(t *testing.T) {
	sentences := readSentences(t)
	if len(sentences) < 100 {
		t.Fatalf("only %d sentences in testdata", len(sentences))
	}
	fp := embedAll(t, newTestONNX(t, "model.onnx"), sentences...)
	q := embedAll(t, newTestONNX(t, "model_int8.onnx"), sentences...)
	// Dynamic quantisation uses one activation scale per tensor, so short
	// texts, whose pooled embedding averages the rounding noise of few
	// tokens, lose the most, and all of them in one batch (as here) share
	// one scale, which is harder than one at a time. The build's activation
	// smoothing and fp32 outlier channels in the FFN output projections
	// keep every one of these sentences, none of which the calibration
	// saw, above 0.99.
	worst, sum := 1.0, 0.0
	for i := range sentences {
		c := cosine(fp[i], q[i])
		if c < 0.99 {
			t.Errorf("int8 vs fp32 cosine %.4f < 0.99 for %q", c, sentences[i])
		}
		worst = min(worst, c)
		sum += c
	}
	mean := sum / float64(len(sentences))
	if mean < 0.995 {
		t.Errorf("mean int8 vs fp32 cosine %.4f < 0.995", mean)
	}
	t.Logf("int8 vs fp32 cosine over %d sentences: mean %.4f, worst %.4f", len(sentences), mean, worst)
}

func TestONNXBatchEqualsSingle(t *testing.T) {
	e := newTestONNX(t, "model.onnx")
	texts := []string{"hi", "The weather is lovely today, and I want to go for a long walk along the river before dinner.", "", "book a table for two at an italian place tonight", "東京 café 🙂"}
	batch := embedAll(t, e, texts...)
	for i, text := range texts {
		single := embedAll(t, e, text)[0]
		for k := range single {
			if d := math.Abs(float64(single[k] - batch[i][k])); d > 1e-5 {
				t.Fatalf("text %d %q: batch and single differ by %g at %d", i, text, d, k)
			}
		}
	}
}

func TestONNXBadInput(t *testing.T) {
	e := newTestONNX(t, "model_int8.onnx")
	for _, tc := range []struct{ name, text string }{
		{"empty", ""},
		{"10000 words", strings.Repeat("lorem ipsum dolor sit amet ", 2000)},
		{"invalid UTF-8", "caf\xc3\x28 \xff\xfe bar"},
		{"NUL bytes", "hello\x00\x00world\x00"},
		{"emoji only", "🙂🚀🔥"},
		{"one long word", strings.Repeat("a", 5000)},
		{"whitespace only", " \t\n\r\u00a0 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := embedAll(t, e, tc.text)[0]
			norm := math.Sqrt(cosine(v, v))
			if math.Abs(norm-1) > 1e-4 {
				t.Fatalf("norm = %g, want 1", norm)
			}
		})
	}
	t.Run("wrong dst length", func(t *testing.T) {
		err := e.Embed(context.Background(), []string{"a", "b"}, make([]float32, 384))
		if err == nil || !strings.Contains(err.Error(), "want 768") {
			t.Fatalf("err = %v, want a dst length error", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := e.Embed(ctx, []string{"a"}, make([]float32, 384)); err == nil {
			t.Fatal("want an error from a cancelled context")
		}
	})
}

func TestONNXMissingFiles(t *testing.T) {
	dir := modelDir(t)
	for _, tc := range []struct {
		name string
		opts ONNXOptions
		want string
	}{
		{"no model dir", ONNXOptions{ModelDir: filepath.Join(t.TempDir(), "nope")}, "scripts/setup.sh"},
		{"no model file", ONNXOptions{ModelDir: dir, ModelFile: "missing.onnx"}, "missing.onnx"},
		{"no runtime", ONNXOptions{ModelDir: dir, RuntimeLib: "/nonexistent/libonnxruntime.so"}, "/nonexistent/libonnxruntime.so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewONNX(tc.opts)
			if err == nil {
				e.Close()
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "setup.sh") {
				t.Fatalf("error %q should name %q and say to run scripts/setup.sh", err, tc.want)
			}
		})
	}
}

func TestONNXConcurrent(t *testing.T) {
	e := newTestONNX(t, "model_int8.onnx")
	// One at a time: int8 activation ranges depend on batch padding, so
	// only single-text results are comparable bit for bit.
	want := make([][]float32, len(referenceSentences))
	for i, s := range referenceSentences {
		want[i] = embedAll(t, e, s)[0]
	}
	var wg sync.WaitGroup
	errs := make(chan string, 32)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < 5; r++ {
				i := (g + r) % len(referenceSentences)
				dst := make([]float32, e.Dim())
				if err := e.Embed(context.Background(), referenceSentences[i:i+1], dst); err != nil {
					errs <- err.Error()
					return
				}
				if c := cosine(dst, want[i]); c < 0.99999 {
					errs <- "concurrent result differs"
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestONNXModelID(t *testing.T) {
	a := newTestONNX(t, "model.onnx")
	b := newTestONNX(t, "model_int8.onnx")
	if !strings.HasPrefix(a.ModelID(), "onnx:") || len(a.ModelID()) != len("onnx:")+64 {
		t.Fatalf("ModelID() = %q, want onnx:<sha256>", a.ModelID())
	}
	if a.ModelID() == b.ModelID() {
		t.Fatal("fp32 and int8 models share a ModelID")
	}
}

func TestPlanRuns(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lens     []int
		maxBatch int
		want     []int
	}{
		{"empty", nil, 32, []int{0}},
		{"one", []int{9}, 32, []int{0, 1}},
		{"similar lengths share a run", []int{10, 10, 11, 12}, 32, []int{0, 4}},
		// Padding 4 short texts to 200 tokens costs far more than a run.
		{"outlier gets its own run", []int{8, 8, 9, 9, 200}, 32, []int{0, 4, 5}},
		{"max batch caps runs", []int{5, 5, 5, 5, 5}, 2, []int{0, 2, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cuts := planRuns(nil, nil, len(tc.lens), tc.maxBatch, func(k int) int { return tc.lens[k] })
			if !slices.Equal(cuts, tc.want) {
				t.Fatalf("cuts %v, want %v", cuts, tc.want)
			}
		})
	}
}
