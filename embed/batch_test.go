package embed

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowEncoder wraps hashEncoder with a fixed cost per call, like an ONNX
// run, and records batch sizes.
type slowEncoder struct {
	hashEncoder
	cost  time.Duration
	mu    sync.Mutex
	sizes []int
}

func (s *slowEncoder) Embed(ctx context.Context, texts []string, dst []float32) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(texts))
	s.mu.Unlock()
	time.Sleep(s.cost)
	return s.hashEncoder.Embed(ctx, texts, dst)
}

func TestBatcherGivesEachCallerItsVector(t *testing.T) {
	inner := &slowEncoder{hashEncoder: hashEncoder{id: "m", dim: 8}, cost: 2 * time.Millisecond}
	ref := &hashEncoder{id: "m", dim: 8}
	before := runtime.NumGoroutine()
	b := NewBatcher(inner, BatchOptions{MaxBatch: 16, Workers: 1})
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < 5; r++ {
				text := fmt.Sprintf("caller %d request %d", g, r)
				got, want := make([]float32, 8), make([]float32, 8)
				if err := b.Embed(context.Background(), []string{text}, got); err != nil {
					t.Error(err)
					return
				}
				ref.Embed(context.Background(), []string{text}, want)
				for k := range got {
					if got[k] != want[k] {
						t.Errorf("%q got another caller's vector", text)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	inner.mu.Lock()
	largest, calls := 0, len(inner.sizes)
	for _, n := range inner.sizes {
		largest = max(largest, n)
	}
	inner.mu.Unlock()
	if largest < 2 || calls >= 160 {
		t.Fatalf("no batching happened: %d inner calls for 160 texts, largest batch %d", calls, largest)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("goroutines: %d before, %d after Close", before, after)
	}
	if err := b.Embed(context.Background(), []string{"x"}, make([]float32, 8)); !errors.Is(err, ErrBatcherClosed) {
		t.Fatalf("Embed after Close: %v", err)
	}
}

func TestBatcherLoneRequestDoesNotWait(t *testing.T) {
	inner := &slowEncoder{hashEncoder: hashEncoder{id: "m", dim: 8}}
	b := NewBatcher(inner, BatchOptions{Window: time.Second})
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- b.Embed(context.Background(), []string{"alone"}, make([]float32, 8)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(500 * time.Millisecond):
		t.Fatal("a lone request waited for the batching window")
	}
}

func TestBatcherCancelAndErrors(t *testing.T) {
	inner := &slowEncoder{hashEncoder: hashEncoder{id: "m", dim: 8}, cost: 200 * time.Millisecond}
	b := NewBatcher(inner, BatchOptions{Workers: 1})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Embed(ctx, []string{"slow"}, make([]float32, 8)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled call: %v", err)
	}
	if err := b.Embed(context.Background(), []string{"x"}, make([]float32, 3)); err == nil {
		t.Fatal("wrong dst length: want an error")
	}
	// Several texts bypass batching.
	if err := b.Embed(context.Background(), []string{"a", "b"}, make([]float32, 16)); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkBatcher compares the int8 model called directly with the same
// model behind a Batcher, with 1 and 32 concurrent callers.
func BenchmarkBatcher(b *testing.B) {
	benchBatcher(b, BatchOptions{})
}

func benchBatcher(b *testing.B, batchOpts BatchOptions) {
	e := newTestONNX(b, "model_int8.onnx")
	// Varied prompts, as a router sees them: lengths differ, so batches
	// need padding or several runs, and workers finish at different times.
	sentences := readSentences(b)
	for _, par := range []int{1, 16} {
		for _, batched := range []bool{false, true} {
			var enc Encoder = e
			if batched {
				enc = NewBatcher(e, batchOpts)
			}
			b.Run(fmt.Sprintf("callers=%d/batched=%v", par*runtime.GOMAXPROCS(0), batched), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(par)
				var next atomic.Int64
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					dst := make([]float32, enc.Dim())
					text := make([]string, 1)
					for pb.Next() {
						text[0] = sentences[int(next.Add(1))%len(sentences)]
						if err := enc.Embed(context.Background(), text, dst); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "texts/s")
			})
			if bt, ok := enc.(*Batcher); ok {
				// Stop the workers without closing the shared model.
				close(bt.stop)
				bt.wg.Wait()
			}
		}
	}
}
